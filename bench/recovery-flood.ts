/**
 * The recovery-backlog flood (finding 4 of the hardening work): one broker
 * process with its defaults (recovery on, in memory), one subscriber on
 * `calls`, and 20 connections posting 1 MB bodies to `/_notify/call` as fast
 * as they can. Before RECOVERY_BACKLOG_BYTES, every event was kept for the
 * whole recovery window: RSS grew by about 230 MB/s and the heap ran out
 * after 21 s. It prints the broker's RSS as the flood goes, its peak, and
 * whether the process is still alive. Target: alive, peak under 1.5 GB.
 *
 * Run: npx tsx bench/recovery-flood.ts [seconds=30] [RECOVERY_BACKLOG_BYTES, e.g. 100gb to see the old growth]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { io as connectClient } from 'socket.io-client';

const SECONDS = Number(process.argv[2] ?? 30);
const BACKLOG = process.argv[3];
const CONNECTIONS = 20;
const BODY = JSON.stringify({ call: 'flood', pad: 'x'.repeat(999_950) });
const PEAK_TARGET_BYTES = 1.5e9;
const SAMPLE_MS = 1_000;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The resident set of process `pid`, in bytes (Linux). */
function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1_024 : 0;
}

const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', DEBUG: '' };
if (BACKLOG) env.RECOVERY_BACKLOG_BYTES = BACKLOG;
if (process.env.RECOVERY_WINDOW) env.RECOVERY_WINDOW = process.env.RECOVERY_WINDOW;
const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
let exited: string | undefined;
child.once('exit', (code, signal) => (exited = `exited with ${code ?? signal}`));
const url = await new Promise<string>((resolve, reject) => {
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    const match = /listening on (http:\/\/\S+)/.exec(out);
    if (match) resolve(match[1] as string);
  });
  child.once('exit', () => reject(new Error('the broker exited before listening')));
});

const subscriber = connectClient(url, { transports: ['websocket'], forceNew: true });
await new Promise((resolve) => subscriber.once('welcome', resolve));
await new Promise((resolve) => subscriber.emit('join', 'calls', resolve));
let delivered = 0;
subscriber.on('call', () => delivered++);

const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
const post = (): Promise<number> =>
  new Promise((resolve) => {
    const req = request(`${url}/_notify/call`, { method: 'POST', agent, headers: { 'Content-Type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end(BODY);
  });

const start = Date.now();
const end = start + SECONDS * 1_000;
let posted = 0;
let failed = 0;
const workers = Array.from({ length: CONNECTIONS }, async () => {
  while (Date.now() < end && exited === undefined) {
    if ((await post()) === 200) posted++;
    else failed++;
  }
});
const baseline = rss(child.pid as number);
let peak = baseline;
const sampler = setInterval(() => {
  if (exited) return;
  const now = rss(child.pid as number);
  peak = Math.max(peak, now);
  console.log(`${((Date.now() - start) / 1_000).toFixed(0).padStart(3)} s  RSS ${(now / 1e6).toFixed(0)} MB  posted ${posted}  delivered ${delivered}`);
}, SAMPLE_MS);
await Promise.all(workers);
clearInterval(sampler);
const alive = exited === undefined;
console.log(
  `${CONNECTIONS} connections × 1 MB for ${SECONDS} s (RECOVERY_BACKLOG_BYTES ${BACKLOG ?? 'default'}): ` +
    `${posted} pushes (${(posted / SECONDS).toFixed(0)}/s), ${failed} failed; RSS ${(baseline / 1e6).toFixed(0)} MB → peak ${(peak / 1e6).toFixed(0)} MB; ` +
    `broker ${alive ? 'alive' : exited}`,
);
const met = alive && peak < PEAK_TARGET_BYTES;
console.log(`target (alive, peak < ${PEAK_TARGET_BYTES / 1e9} GB): ${met ? 'met' : 'NOT met'}`);
subscriber.close();
agent.destroy();
child.kill('SIGTERM');
process.exitCode = met ? 0 : 1;
