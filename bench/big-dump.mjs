#!/usr/bin/env node
// A large pg_dump-like SQL text dump on stdout, deterministic and streamed (constant memory), for the
// "20 GB stream with 1% scattered changes" benchmark (issue 18, bench/results/stream-20g.md).
//
//   node bench/big-dump.mjs --day 1 --gb 20 | lifeboat backup --stdin --stdin-filename dump.sql
//   lifeboat backup --stdin-from-command 'node bench/big-dump.mjs --day 2 --gb 20' --stdin-filename dump.sql
//
// Options: --day D (1 = base; each later day k = 2..D changes ~1% of the rows: balance and note updated,
// plus 1 row in 20,000 deleted and 1 in 20,000 followed by an inserted row), --gb G or --mb M (size of
// day 1, decimal; later days have the same rows, so about the same size), --seed S.
// Every row is a pure function of (seed, row number, day): no state, so day 2 is day 1 with scattered edits.
// Writes with fs.writeSync to fd 1 (blocking pipe): about 0.5-1 GB/s on one core.
import { writeSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const DAY = Number(opt('day', '1'));
const SEED = Number(opt('seed', '1')) | 0;
const BYTES = args.includes('--mb') ? Number(opt('mb', '0')) * 1e6 : Number(opt('gb', '1')) * 1e9;
if (!(DAY >= 1 && Number.isInteger(DAY)) || !(BYTES > 0)) {
  process.stderr.write('usage: big-dump.mjs --day D (>=1) --gb G | --mb M [--seed S]\n');
  process.exit(2);
}

/** 32-bit mix (murmur3 finalizer). */
function mix(x) {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

const enc = (s) => Buffer.from(s, 'latin1');
const NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'niaj', 'olivia', 'peggy', 'rupert', 'sybil', 'trent', 'victor', 'walter', 'yolanda', 'zoe', 'quentin', 'uma', 'xavier', 'beatrice', 'casimir', 'dorothea', 'eustace', 'fernando', 'gwendolyn', 'horatio', 'isolde'].map(enc);
const DOMAINS = ['example.com', 'mail.example.org', 'corp.example.net', 'users.example.io'].map(enc);
const STATUS = ['active', 'suspended', 'pending', 'closed'].map(enc);
const B32 = enc('abcdefghijklmnopqrstuvwxyz234567');
const HEADER = enc(
  '--\n-- PostgreSQL database dump (synthetic, bench/big-dump.mjs)\n--\n\n' +
    'CREATE TABLE public.accounts (\n    id bigint NOT NULL,\n    name text,\n    email text,\n    balance numeric(12,2),\n' +
    '    status text,\n    created_at timestamp with time zone,\n    note text\n);\n\n' +
    'COPY public.accounts (id, name, email, balance, status, created_at, note) FROM stdin;\n',
);
const TRAILER = enc('\\.\n\n--\n-- PostgreSQL database dump complete\n--\n');

// A row is ~100.5 bytes on average; the row count is fixed by the size asked for, so every day has the same rows.
const AVG_ROW = 100.53;
const ROWS = Math.max(1, Math.round((BYTES - HEADER.length - TRAILER.length) / AVG_ROW));

const OUT_SIZE = 1 << 20;
const out = Buffer.allocUnsafe(OUT_SIZE + 4096);
let pos = 0;
let total = 0;

function flush() {
  let off = 0;
  while (off < pos) {
    try {
      off += writeSync(1, out, off, pos - off);
    } catch (e) {
      if (e.code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); // non-blocking pipe: wait 1 ms
        continue;
      }
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    }
  }
  total += pos;
  pos = 0;
}

function put(b) {
  for (let i = 0; i < b.length; i++) out[pos++] = b[i];
}
const DIG2 = enc(Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0')).join(''));
function putInt(n) {
  // n: non-negative integer < 2^53
  if (n >= 0x80000000) {
    put(enc(String(n)));
    return;
  }
  const len = n < 1e4 ? (n < 10 ? 1 : n < 100 ? 2 : n < 1e3 ? 3 : 4) : n < 1e6 ? (n < 1e5 ? 5 : 6) : n < 1e8 ? (n < 1e7 ? 7 : 8) : n < 1e9 ? 9 : 10;
  let p = pos + len;
  pos = p;
  while (n >= 100) {
    const q = (n / 100) | 0;
    const r = (n - q * 100) << 1;
    out[--p] = DIG2[r + 1];
    out[--p] = DIG2[r];
    n = q;
  }
  if (n >= 10) {
    out[--p] = DIG2[(n << 1) + 1];
    out[--p] = DIG2[n << 1];
  } else out[--p] = 48 + n;
}
function put2(n) {
  out[pos++] = DIG2[n << 1];
  out[pos++] = DIG2[(n << 1) + 1];
}

/** Row `id` as of `day` (`v`: the day it was last updated, 1 = original values). */
function row(id, v) {
  const h0 = mix(id ^ SEED);
  const h1 = mix(h0 + 0x9e3779b9);
  const h2 = mix(h1 + 0x9e3779b9);
  const hv = v === 1 ? h2 : mix(h2 ^ Math.imul(v, 0x27d4eb2d)); // the updated fields
  const name = NAMES[h0 & 31];
  putInt(id);
  out[pos++] = 9;
  put(name);
  out[pos++] = 9;
  put(name);
  out[pos++] = 46; // .
  putInt((h0 >>> 5) % 100000);
  out[pos++] = 64; // @
  put(DOMAINS[(h0 >>> 22) & 3]);
  out[pos++] = 9;
  putInt((hv % 10000000) | 0);
  out[pos++] = 46;
  put2((hv >>> 24) % 100);
  out[pos++] = 9;
  put(STATUS[v === 1 ? (h1 >>> 30) & 3 : (hv >>> 5) & 3]);
  out[pos++] = 9;
  // created_at: 2019-2025, never changes
  putInt(2019 + (h1 % 7));
  out[pos++] = 45;
  put2(1 + ((h1 >>> 3) % 12));
  out[pos++] = 45;
  put2(1 + ((h1 >>> 7) % 28));
  out[pos++] = 32;
  put2((h1 >>> 12) % 24);
  out[pos++] = 58;
  put2((h1 >>> 17) % 60);
  out[pos++] = 58;
  put2((h1 >>> 23) % 60);
  out[pos++] = 43;
  out[pos++] = 48;
  out[pos++] = 48;
  out[pos++] = 9;
  // note: 6-24 base-32 characters, 6 per 32-bit hash
  const base = hv ^ h1;
  let r = 0;
  const len = 6 + ((h0 >>> 24) % 19);
  for (let i = 0; i < len; i++) {
    if (i % 6 === 0) r = mix(base + Math.imul(i + 1, 0x9e3779b9));
    out[pos++] = B32[r & 31];
    r >>>= 5;
  }
  out[pos++] = 10;
}

put(HEADER);
let inserted = 0;
for (let id = 1; id <= ROWS; id++) {
  let v = 1;
  let deleted = false;
  let insertAfter = 0;
  for (let d = 2; d <= DAY; d++) {
    const c = mix(Math.imul(id, 0x9e3779b1) ^ Math.imul(d, 0x85ebca77) ^ SEED) % 20000;
    if (c < 200) v = d; // 1% updated on day d
    else if (c === 200) deleted = true;
    else if (c === 201) insertAfter = d;
  }
  if (!deleted) row(id, v);
  if (insertAfter) row(ROWS + 1 + inserted++ + insertAfter * 1e9, 1);
  if (pos >= OUT_SIZE) flush();
}
put(TRAILER);
flush();
if (process.env.BIG_DUMP_VERBOSE) process.stderr.write(`big-dump: day ${DAY}, ${ROWS} rows, ${total} bytes\n`);
