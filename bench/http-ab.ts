/**
 * `npx tsx bench/http-ab.ts [connections=50] [rounds=12] [seconds=1] [other broker checkout]`:
 * a finer A/B of `POST /_notify/report_ops` than scenario 3, for a shared,
 * noisy machine: many short autocannon runs, the servers in rotating order,
 * and the server CPU per request of each run (its own `process.cpuUsage()`),
 * whose median and spread say more than requests/s when the load
 * generator and other jobs share the cores. Servers: the broker, bare Express
 * (+ body-parser), and, when a path is given, the broker of another checkout
 * (its `src/main.ts`, run with this tree's node_modules), to measure a change.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { killAll, startServerProc, type ServerProc, type ServerSpec } from './procs.ts';
import { reportOpsBody } from '../test/helpers/payloads.ts';
import { httpRun } from './http-run.ts';
import { median } from './stats.ts';

const [connectionsArg, roundsArg, secondsArg, other] = process.argv.slice(2);
const connections = Number(connectionsArg ?? 50);
const rounds = Number(roundsArg ?? 12);
const seconds = Number(secondsArg ?? 1);

/** One run: requests per second, and the server's CPU per request in µs. */
async function run(server: ServerProc, body: string, durationS: number): Promise<{ rps: number; cpuUs: number }> {
  const result = await httpRun(server, durationS, body, connections);
  if (result.non2xx + result.errors > 0) throw new Error(`${server.label}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.rps, cpuUs: result.cpuPerRequestUs };
}

const specs: ServerSpec[] = [
  { label: 'broker', entry: 'src/main.ts' },
  { label: 'express', entry: 'bench/servers/bare-express.ts' },
];
if (other) {
  const entry = join(other, 'src/main.ts');
  if (!existsSync(entry)) throw new Error(`no ${entry}`);
  specs.push({ label: 'other broker', entry });
}

try {
  const servers = await Promise.all(specs.map((spec) => startServerProc(spec)));
  const body = reportOpsBody();
  for (const server of servers) await run(server, body, 1);
  const results = new Map<string, { rps: number; cpuUs: number }[]>(servers.map((s) => [s.label, []]));
  for (let round = 0; round < rounds; round++) {
    const order = servers.map((_, i) => servers[(i + round) % servers.length]!);
    const line: string[] = [];
    for (const server of order) {
      const r = await run(server, body, seconds);
      results.get(server.label)!.push(r);
      line.push(`${server.label} ${Math.round(r.rps)}/s ${r.cpuUs.toFixed(1)} µs`);
    }
    console.log(`round ${round + 1}: ${line.join('  ')}`);
  }
  const med = (label: string, f: (r: { rps: number; cpuUs: number }) => number): number => median(results.get(label)!.map(f));
  console.log(`\n${connections} connections, ${rounds} rounds of ${seconds} s, medians:`);
  for (const server of servers) {
    console.log(
      `${server.label.padEnd(13)} ${Math.round(med(server.label, (r) => r.rps)).toString().padStart(6)} requests/s (${(med(server.label, (r) => r.rps) / med('express', (r) => r.rps)).toFixed(2)}× Express)` +
        `  ${med(server.label, (r) => r.cpuUs).toFixed(1).padStart(6)} µs CPU/request (${(med(server.label, (r) => r.cpuUs) / med('express', (r) => r.cpuUs)).toFixed(2)}× Express)`,
    );
  }
  // Per-round ratios: each pair ran within seconds of each other.
  const pairs = results.get('broker')!.map((r, i) => r.cpuUs / results.get('express')![i]!.cpuUs);
  console.log(`broker ÷ Express CPU/request per round: median ${median(pairs).toFixed(2)}, ${pairs.map((p) => p.toFixed(2)).join(' ')}`);
  if (other) {
    const vsOther = results.get('broker')!.map((r, i) => r.cpuUs / results.get('other broker')![i]!.cpuUs);
    console.log(`broker ÷ other broker CPU/request per round: median ${median(vsOther).toFixed(2)}, ${vsOther.map((p) => p.toFixed(2)).join(' ')}`);
  }
  await Promise.all(servers.map((s) => s.stop()));
} finally {
  killAll();
  setTimeout(() => process.exit(0), 300).unref();
}
