import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CLI } from './tmp.js';

/**
 * What the browser tests share: `lifeboat serve` as a child process on a free
 * loopback port, Debian's Chromium through playwright-core, and axe-core's
 * WCAG 2.x A/AA rules run inside a page.
 */

export interface ServeProcess {
  child: ChildProcess;
  /** http://127.0.0.1:PORT */
  base: string;
  /** Everything the server wrote to stderr so far. */
  log: () => string;
}

/** Start `lifeboat -c cfgFile serve` on 127.0.0.1:0; resolves with its URL once it listens. */
export async function startServe(cfgFile: string, env: NodeJS.ProcessEnv = { ...process.env, LIFEBOAT_PASSWORD: '' }): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, '-c', cfgFile, 'serve', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const base = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`server exited ${code}: ${log}`)));
  });
  return { child, base, log: () => log };
}

/** Headless Debian Chromium (/usr/bin/chromium). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** axe-core (WCAG 2.0/2.1 A and AA rules) in the page; returns the violations as readable lines. */
export async function axeViolations(page: Page): Promise<string[]> {
  const src = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ content: src });
  const v: Array<{ id: string; impact: string; help: string; nodes: Array<{ target: string[] }> }> = await page.evaluate(async () => {
    const r = await (window as unknown as { axe: { run: (ctx: Document, o: unknown) => Promise<{ violations: unknown[] }> } }).axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations as never;
  });
  return v.map((x) => `${x.id} (${x.impact}): ${x.help} — ${x.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}
