/**
 * `npx tsx bench/idle-heap.ts [clients=1000] [top=30]`: where the heap of idle
 * clients goes. Starts the broker (as `npm start` does) and the bare
 * Socket.IO baseline, each fresh, connects `clients` socket.io-client 4.x
 * sockets to each (joined to `calls`, as scenario 4 does), and writes a heap
 * snapshot of the server before and after (V8 collects garbage first). It
 * prints, per server, the retained growth per client by V8 node name (a
 * constructor, `(closure)`, `(array)`, `(string)`...), and the difference
 * broker − bare: what the broker keeps per socket that bare Socket.IO does not.
 */
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SETTINGS } from '../src/settings.ts';
import type { SubscriberCommand, SubscriberReport } from './messages.ts';
import { forkWorker, killAll, startServerProc, type ServerSpec } from './procs.ts';
import { sleep } from '../test/helpers/wait.ts';

const clients = Number(process.argv[2] ?? 1_000);
const top = Number(process.argv[3] ?? 30);

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Self size and count by `type:name` of every node of a heap snapshot. */
function bySelf(file: string): Map<string, { size: number; count: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt] as number] as string;
    const rawName = snap.strings[snap.nodes[i + nameAt] as number] ?? '';
    // Strings and code are named by their content: count them by type alone.
    const name = type === 'object' || type === 'closure' || type === 'native' ? rawName.slice(0, 60) : '';
    const key = `${type}${name ? `:${name}` : ''}`;
    const entry = out.get(key) ?? { size: 0, count: 0 };
    entry.size += snap.nodes[i + sizeAt] as number;
    entry.count++;
    out.set(key, entry);
  }
  return out;
}

async function measure(spec: ServerSpec): Promise<Map<string, { size: number; count: number }>> {
  const server = await startServerProc(spec);
  const dir = tmpdir();
  const before = join(dir, `idle-heap-${process.pid}-${spec.label.replace(/\W+/g, "-")}-before.heapsnapshot`);
  const after = join(dir, `idle-heap-${process.pid}-${spec.label.replace(/\W+/g, "-")}-after.heapsnapshot`);
  const worker = forkWorker<SubscriberCommand, SubscriberReport>('subscribers.ts');
  try {
    await sleep(500);
    const a = await server.probe(true, before);
    worker.send({ type: 'connect', targets: [{ name: 'idle', urls: [server.url] }], count: clients, first: 0, layout: 'bus', event: 'call' });
    await worker.next((r): r is Extract<SubscriberReport, { type: 'connected' }> => r.type === 'connected', 600_000);
    await sleep(1_000);
    const b = await server.probe(true, after);
    console.log(`${spec.label}: heap used ${((b.mem.heapUsed - a.mem.heapUsed) / clients / 1024).toFixed(2)} KiB/client (process.memoryUsage after a full GC)`);
    const x = bySelf(before);
    const y = bySelf(after);
    const diff = new Map<string, { size: number; count: number }>();
    for (const [key, v] of y) {
      const u = x.get(key) ?? { size: 0, count: 0 };
      diff.set(key, { size: (v.size - u.size) / clients, count: (v.count - u.count) / clients });
    }
    for (const [key, u] of x) if (!y.has(key)) diff.set(key, { size: -u.size / clients, count: -u.count / clients });
    const total = [...diff.values()].reduce((s, v) => s + v.size, 0);
    console.log(`${spec.label}: snapshot growth ${(total / 1024).toFixed(2)} KiB/client`);
    return diff;
  } finally {
    worker.send({ type: 'close' });
    await sleep(300);
    worker.child.kill('SIGKILL');
    await server.stop();
    if (process.env.KEEP_SNAPSHOTS) console.log(`${spec.label}: kept ${before} and ${after}`);
    else {
      rmSync(before, { force: true });
      rmSync(after, { force: true });
    }
  }
}

const show = (rows: [string, { size: number; count: number }][]): void => {
  for (const [key, v] of rows) console.log(`${v.size.toFixed(1).padStart(9)} B ${v.count.toFixed(2).padStart(6)} ×  ${key}`);
};

try {
  const broker = await measure({ label: 'broker', entry: 'src/main.ts' });
  const bare = await measure({
    label: 'bare socket.io',
    entry: 'bench/servers/bare-socketio.ts',
    env: { BENCH_IN: 'ignore', BENCH_RECOVERY_MS: String(DEFAULT_SETTINGS.recoveryWindowMs) },
  });
  console.log(`\nbroker, per client, largest:`);
  show([...broker].sort((p, q) => q[1].size - p[1].size).slice(0, top));
  const delta = new Map<string, { size: number; count: number }>();
  for (const key of new Set([...broker.keys(), ...bare.keys()])) {
    const p = broker.get(key) ?? { size: 0, count: 0 };
    const q = bare.get(key) ?? { size: 0, count: 0 };
    delta.set(key, { size: p.size - q.size, count: p.count - q.count });
  }
  console.log(`\nbroker − bare, per client (largest differences either way):`);
  show([...delta].sort((p, q) => Math.abs(q[1].size) - Math.abs(p[1].size)).slice(0, top));
  console.log(`total difference ${([...delta.values()].reduce((s, v) => s + v.size, 0) / 1024).toFixed(2)} KiB/client`);
} finally {
  killAll();
  setTimeout(() => process.exit(0), 300).unref();
}
