#!/usr/bin/env node
// JSON -> TOON with the official @toon-format/toon library (default encode options).
//
// Two ways to run it:
//
//   node convert_toon.mjs                 long-lived helper (what vidwatch uses)
//   node convert_toon.mjs --once          one JSON document on stdin -> its TOON on stdout
//   node convert_toon.mjs --once --decode one TOON document on stdin -> its JSON on stdout
//
// Long-lived line protocol (UTF-8, one JSON object per line, both ways):
//
//   first line out: {"id":0,"ok":true,"ready":true,"version":"<library>","node":"<node>","pid":N}
//   request:  {"id":N,"op":"encode","doc":<any JSON value>}
//             {"id":N,"op":"decode","text":"<TOON text>"}
//             {"id":N,"op":"ping"}
//   answer:   {"id":N,"ok":true,"result":<TOON text | decoded JSON value | "pong">}
//             {"id":N,"ok":false,"error":"<name>: <message>"}
//
// Requests are answered in the order they arrive, each with its id. The helper exits when
// its stdin closes, so it never outlives the process that started it.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { decode, encode } from '@toon-format/toon';

function libraryVersion() {
  const require = createRequire(import.meta.url);
  let dir = dirname(require.resolve('@toon-format/toon'));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (pkg.name === '@toon-format/toon') return pkg.version;
    } catch {
      // no package.json at this level: keep walking up
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

function describe(err) {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function handle(line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (err) {
    // still answer under the request's id when it can be read, so the caller is not left waiting
    const m = /^\s*\{\s*"id"\s*:\s*(\d+)/.exec(line);
    const id = m ? Number(m[1]) : null;
    return { id, ok: false, error: `invalid request line: ${describe(err)}` };
  }
  const id = req !== null && typeof req === 'object' && 'id' in req ? req.id : null;
  try {
    switch (req.op) {
      case 'encode':
        return { id, ok: true, result: encode(req.doc) };
      case 'decode':
        return { id, ok: true, result: decode(req.text) };
      case 'ping':
        return { id, ok: true, result: 'pong' };
      default:
        return { id, ok: false, error: `unknown op: ${JSON.stringify(req.op)}` };
    }
  } catch (err) {
    return { id, ok: false, error: describe(err) };
  }
}

function answer(line) {
  try {
    return JSON.stringify(handle(line));
  } catch (err) {
    // e.g. a decoded value JSON.stringify cannot write; still answer the request
    return JSON.stringify({ id: null, ok: false, error: describe(err) });
  }
}

function readAll(stream) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.on('error', reject);
  });
}

async function once(decodeMode) {
  const input = await readAll(process.stdin);
  try {
    const out = decodeMode ? JSON.stringify(decode(input)) : encode(JSON.parse(input));
    process.stdout.write(out);
  } catch (err) {
    process.stderr.write(`convert_toon: ${describe(err)}\n`);
    process.exitCode = 1;
  }
}

function serve() {
  // A closed stdout means our parent is gone: leave quietly.
  process.stdout.on('error', () => process.exit(0));
  process.stdout.write(
    `${JSON.stringify({
      id: 0,
      ok: true,
      ready: true,
      version: libraryVersion(),
      node: process.version,
      pid: process.pid,
    })}\n`,
  );
  process.stdin.setEncoding('utf8');
  let pending = '';
  process.stdin.on('data', (chunk) => {
    pending += chunk;
    if (!pending.includes('\n')) return;
    const lines = pending.split('\n');
    pending = lines.pop();
    const out = [];
    for (const line of lines) {
      if (line.trim() !== '') out.push(answer(line));
    }
    // one write per chunk: a batch of requests costs one pipe write, not one per answer
    if (out.length > 0) process.stdout.write(`${out.join('\n')}\n`);
  });
  process.stdin.on('end', () => {
    if (pending.trim() !== '') process.stdout.write(`${answer(pending)}\n`);
  });
}

const args = process.argv.slice(2);
if (args.includes('--once')) {
  await once(args.includes('--decode'));
} else {
  serve();
}
