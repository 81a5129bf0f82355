import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

/**
 * Real receivers for alert tests: an HTTP server that records webhook
 * requests, and an SMTP server (smtp-server) that records e-mails, both on
 * 127.0.0.1 with an OS-assigned port.
 */

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  raw: Buffer;
  json: unknown;
}

export interface WebhookReceiver {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Requests whose path is `path`. */
  on(path: string): ReceivedRequest[];
  /** Status code to answer with (default 200; 0 = never answer); a function decides per request. */
  respondWith(status: number | ((req: ReceivedRequest, index: number) => number)): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const requests: ReceivedRequest[] = [];
  let status: number | ((req: ReceivedRequest, index: number) => number) = 200;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let json: unknown;
      try {
        json = JSON.parse(raw.toString('utf8'));
      } catch {
        json = undefined;
      }
      const r: ReceivedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, raw, json };
      requests.push(r);
      const code = typeof status === 'function' ? status(r, requests.length - 1) : status;
      if (code === 0) return; // never answer (timeouts)
      res.writeHead(code, { 'content-type': 'text/plain' });
      res.end(code < 300 ? 'ok' : 'nope');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    on: (p) => requests.filter((r) => r.path === p),
    respondWith: (s) => {
      status = s;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// --- SMTP ----------------------------------------------------------------------

export interface ReceivedMail {
  envelopeFrom: string;
  envelopeTo: string[];
  /** AUTH user name, if the client authenticated. */
  user: string | undefined;
  raw: string;
  headers: Map<string, string>;
  subject: string;
  /** Decoded text/plain body. */
  text: string;
}

export interface SmtpReceiver {
  port: number;
  messages: ReceivedMail[];
  /** Failed AUTH attempts seen (user names). */
  authFailures: string[];
  close(): Promise<void>;
}

/** Plain SMTP (no TLS) on 127.0.0.1; when `auth` is given, AUTH PLAIN/LOGIN is required and checked. */
export async function startSmtpReceiver(opts: { auth?: { user: string; pass: string } } = {}): Promise<SmtpReceiver> {
  const messages: ReceivedMail[] = [];
  const authFailures: string[] = [];
  const server = new SMTPServer({
    secure: false,
    disabledCommands: opts.auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    authOptional: !opts.auth,
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, cb) {
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) return cb(null, { user: auth.username });
      authFailures.push(auth.username ?? '');
      return cb(new Error('Invalid username or password'));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const parsed = parseMail(raw);
        messages.push({
          envelopeFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          envelopeTo: session.envelope.rcptTo.map((r) => r.address),
          user: session.user as string | undefined,
          raw,
          ...parsed,
        });
        cb();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return { port, messages, authFailures, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

// A small MIME reader: enough for what nodemailer produces (headers with
// encoded words, quoted-printable / base64 / 7bit bodies, multipart).

function decodeWords(s: string): string {
  return s
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_all, _charset: string, enc: string, text: string) => {
      if (enc.toUpperCase() === 'B') return Buffer.from(text, 'base64').toString('utf8');
      const bytes = text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => `%${h}`);
      return decodeURIComponent(bytes.replace(/%(?![0-9A-Fa-f]{2})/g, '%25'));
    });
}

function decodeQuotedPrintable(s: string): string {
  const soft = s.replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < soft.length; i++) {
    const c = soft[i]!;
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(soft.slice(i + 1, i + 3))) {
      bytes.push(parseInt(soft.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...Buffer.from(c, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

function splitHeaders(raw: string): { headers: Map<string, string>; body: string } {
  const idx = raw.search(/\r?\n\r?\n/);
  const head = idx < 0 ? raw : raw.slice(0, idx);
  const body = idx < 0 ? '' : raw.slice(idx).replace(/^\r?\n\r?\n/, '');
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m) headers.set(m[1]!.toLowerCase(), m[2]!);
  }
  return { headers, body };
}

function textOf(headers: Map<string, string>, body: string): string | undefined {
  const ct = headers.get('content-type') ?? 'text/plain';
  const boundary = /boundary="?([^";]+)"?/i.exec(ct)?.[1];
  if (/^multipart\//i.test(ct) && boundary) {
    for (const part of body.split(`--${boundary}`).slice(1)) {
      if (part.startsWith('--')) break;
      const p = splitHeaders(part.replace(/^\r?\n/, ''));
      const t = textOf(p.headers, p.body);
      if (t !== undefined) return t;
    }
    return undefined;
  }
  if (!/^text\/plain/i.test(ct)) return undefined;
  const cte = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  if (cte === 'quoted-printable') return decodeQuotedPrintable(body);
  if (cte === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  return body;
}

export function parseMail(raw: string): { headers: Map<string, string>; subject: string; text: string } {
  const { headers, body } = splitHeaders(raw);
  for (const [k, v] of headers) headers.set(k, decodeWords(v));
  return { headers, subject: headers.get('subject') ?? '', text: (textOf(headers, body) ?? '').replace(/\r\n/g, '\n') };
}
