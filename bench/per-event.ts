/**
 * Per-event CPU of the broker's own checks, in this process (no network):
 * the payload depth check (`tooDeep`, src/protocol.ts) on a 1 KB and a
 * 100 KB payload, beside what Socket.IO does with the same payload anyway
 * (JSON.parse when it arrives; the encoder's walk for binary parts plus
 * JSON.stringify when it is broadcast), and the broker's routing of one
 * event (route lookup, `_in` rooms, exactly-once broadcast to nobody, with
 * recovery on, as the broker runs) beside the bare `io.to([...]).emit` it
 * replaces. Used by `npm run bench` (scenario 6); `npx tsx bench/per-event.ts`
 * prints the same alone.
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { Encoder, PacketType } from 'socket.io-parser';
import { attachBroker } from '../src/attach.ts';
import { jsonOnlyParser } from '../src/internals.ts';
import { capBacklog } from '../src/recovery-backlog.ts';
import { tooDeep } from '../src/protocol.ts';
import { DEFAULT_SETTINGS } from '../src/settings.ts';
import { socketOptions } from '../src/server.ts';
import { SAMPLE_CALL } from '../test/helpers/payloads.ts';

/** A payload of about `bytes` of JSON: `call` records in an array, the shape a batch of events would have. */
export function payloadOf(bytes: number): Record<string, unknown> {
  const one = JSON.stringify(SAMPLE_CALL).length + 1;
  const calls = Array.from({ length: Math.max(1, Math.round((bytes - 12) / one)) }, (_, i) => ({ ...SAMPLE_CALL, seq: i }));
  return { calls };
}

/**
 * µs per call of `f`: the least over `rounds` timed rounds of `n` calls, after
 * a warm-up. On a shared machine other jobs only ever add time to a round, so
 * the least is the figure nearest the cost itself.
 */
function timeIt(f: () => unknown, n: number, rounds = 7): number {
  for (let i = 0; i < n; i++) f();
  let least = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f();
    least = Math.min(least, Number(process.hrtime.bigint() - start) / 1_000 / n);
  }
  return least;
}

export interface DepthRow {
  readonly bytes: number;
  readonly containers: number;
  /** µs per event. */
  readonly depthCheck: number;
  readonly parse: number;
  /** socket.io-parser's own encode (its binary walk, then JSON.stringify). */
  readonly encode: number;
  /** The broker's encoder (src/internals.ts `jsonOnlyParser`): JSON.stringify only. */
  readonly brokerEncode: number;
}

export interface RoutingRow {
  /** µs per event: the broker's `route` (lookup, `_in`, exactly-once broadcast, telemetry), and its depth check. */
  readonly broker: number;
  /** µs per event: bare Socket.IO `io.to([bus, ..._in]).emit(...)`. */
  readonly bare: number;
}

function containers(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  return 1 + Object.values(value).reduce<number>((sum, v) => sum + containers(v), 0);
}

/** The depth check against what Socket.IO does with the same payload. */
export function measureDepth(sizes: readonly number[] = [1_000, 100_000]): DepthRow[] {
  const encoder = new Encoder();
  const { Encoder: BrokerEncoder } = jsonOnlyParser(() => undefined);
  const brokerEncoder = new BrokerEncoder();
  return sizes.map((bytes) => {
    // As a payload arrives: parsed from its JSON.
    const text = JSON.stringify(payloadOf(bytes));
    const payload = JSON.parse(text) as unknown;
    const n = Math.max(200, Math.round(20_000_000 / text.length));
    const packet = (): { type: PacketType; nsp: string; data: unknown[] } => ({ type: PacketType.EVENT, nsp: '/', data: ['call', payload, 'offset'] });
    return {
      bytes: text.length,
      containers: containers(payload),
      depthCheck: timeIt(() => tooDeep(payload, DEFAULT_SETTINGS.maxPayloadDepth), n),
      parse: timeIt(() => JSON.parse(text), n),
      encode: timeIt(() => encoder.encode(packet()), n),
      brokerEncode: timeIt(() => brokerEncoder.encode(packet()), n),
    };
  });
}

/**
 * The broker's routing of one `call` (depth check, route, `_in`, one
 * broadcast) against the bare `io.to([bus, ..._in]).emit`, both to rooms
 * nobody is in, recovery on: the per-event work without the per-delivery.
 */
export async function measureRouting(): Promise<RoutingRow> {
  // Each as it runs in the bench: the broker with its parser and its wrappers of the adapter (src/server.ts), the bare server with Socket.IO's.
  const brokerIo = new Server(createServer(), { ...socketOptions(DEFAULT_SETTINGS), parser: jsonOnlyParser(() => undefined) });
  const bareIo = new Server(createServer(), socketOptions(DEFAULT_SETTINGS));
  capBacklog(brokerIo, DEFAULT_SETTINGS.recoveryBacklogBytes);
  // Skipping unheard events would skip the broadcast itself: keep it, to compare like with like.
  const broker = attachBroker(brokerIo, undefined, { skipUnheard: false });
  const call = JSON.parse(JSON.stringify(SAMPLE_CALL)) as typeof SAMPLE_CALL;
  const inRooms = (data: { _in?: readonly string[] }): string[] => [...(data._in ?? [])];
  const n = 20_000;
  try {
    // Alternate, so that a slower moment of the machine falls on both.
    let brokerLeast = Number.POSITIVE_INFINITY;
    let bareLeast = Number.POSITIVE_INFINITY;
    for (let r = 0; r < 7; r++) {
      brokerLeast = Math.min(
        brokerLeast,
        timeIt(() => {
          if (!tooDeep(call, DEFAULT_SETTINGS.maxPayloadDepth)) broker.route('call', [call]);
        }, n, 1),
      );
      bareLeast = Math.min(bareLeast, timeIt(() => bareIo.to(['calls', ...inRooms(call)]).emit('call', call), n, 1));
    }
    return { broker: brokerLeast, bare: bareLeast };
  } finally {
    broker.close();
    brokerIo.close();
    bareIo.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const row of measureDepth()) {
    console.log(
      `${row.bytes} bytes, ${row.containers} objects and arrays: depth check ${row.depthCheck.toFixed(2)} µs; ` +
        `JSON.parse ${row.parse.toFixed(2)} µs; socket.io-parser encode ${row.encode.toFixed(2)} µs, the broker's ${row.brokerEncode.toFixed(2)} µs`,
    );
  }
  const routing = await measureRouting();
  console.log(`one call routed, to nobody: broker ${routing.broker.toFixed(2)} µs, bare io.to([...]).emit ${routing.bare.toFixed(2)} µs`);
  process.exit(0);
}
