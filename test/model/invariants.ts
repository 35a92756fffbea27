/**
 * What the cluster promises each client (docs: "Running several brokers",
 * "When Redis fails"), checked against what a run recorded. Pure: the run
 * (cluster.ts) records, this judges.
 *
 * The ground truth is every entry Redis added to the event stream, as its
 * MONITOR feed shows them (recorder.ts): an event is "in the cluster" when
 * Redis added it to the stream, and the stream's order is the order every
 * client must see.
 *
 * - order: a client gets the events of its rooms in stream order, whoever
 *   published them and on whichever node it is (a chain of recovered
 *   sessions counts as one client);
 * - duplicate: no event twice, within a chain;
 * - gap: between the first and the last event a chain got, it got every
 *   stream event of its rooms: while connected (Redis up, or down within the
 *   grace), and across a reconnection told `recovered: true`; but for the
 *   entries its nodes counted as trimmed before they read them
 *   (`spicy_action_cluster_missed_entries_total`): a chain may miss no more
 *   than the nodes it was on counted;
 * - foreign: nothing of rooms it is not in;
 * - ack: `{ok: true}` means the event is in the stream, `{ok: false}` that it
 *   is not (it reached that node's clients only);
 * - uncounted: on every node that was not killed, the events it took that
 *   never reached the stream are counted in
 *   `spicy_action_cluster_undelivered_events_total`.
 */

/** One entry of the stream that the run published: its id, the event's key and the rooms it was sent to. */
export interface StreamEntry {
  readonly offset: string;
  readonly key: string;
  readonly rooms: readonly string[];
}

/** One event a client received: its key and the offset it came with. */
export interface Received {
  readonly key: string;
  readonly offset: unknown;
}

/** What one client saw, from a fresh session through the sessions recovered after it. */
export interface Chain {
  /** Who, for messages: `subscriber 3 (v4) session 2`. */
  readonly name: string;
  readonly rooms: readonly string[];
  /** How many reconnections were told `recovered: true` along the chain. */
  readonly recoveries: number;
  readonly received: readonly Received[];
  /**
   * How many events it had received when its joins were all acknowledged: a
   * client joining two rooms one after the other may miss, in between, an
   * event of the second that follows in the stream one of the first it got.
   * The gap check starts after them.
   */
  readonly joinedAt: number;
  /** The node lives ({@link NodeLife.name}) it was connected to. */
  readonly lives: readonly string[];
}

/** An acknowledged publication and its answer. */
export interface Acked {
  readonly key: string;
  readonly answer: unknown;
}

/** The events one node process took, and what it counted as undelivered meanwhile. */
export interface NodeLife {
  readonly name: string;
  /** Killed with SIGKILL: what it had in flight is gone, uncounted, as the docs say. */
  readonly killed: boolean;
  /** Keys of the events its publishers' connections handed it. */
  readonly published: readonly string[];
  /** Growth of its undelivered counter over the run; undefined when it could not be read. */
  readonly undelivered: number | undefined;
  /** Growth of its count of stream entries trimmed before it read them; undefined when it could not be read. */
  readonly missed: number | undefined;
}

export type Invariant = 'order' | 'duplicate' | 'gap' | 'foreign' | 'ack' | 'uncounted';

export interface Violation {
  readonly invariant: Invariant;
  readonly detail: string;
}

/** Everything a run recorded. */
export interface RunRecord {
  readonly stream: readonly StreamEntry[];
  readonly chains: readonly Chain[];
  readonly acks: readonly Acked[];
  /** Acknowledged events whose answer never came while their connection stayed up. */
  readonly unanswered: readonly string[];
  readonly nodes: readonly NodeLife[];
}

/** At most this many violations of one invariant are described per chain: the first tell the story. */
const DETAILS_PER_CHAIN = 3;

/**
 * Every broken promise in `record`, the first few of each kind per client.
 *
 * @example
 * check({ stream, chains, acks, nodes }); // [] when the run kept every promise
 */
export function check(record: RunRecord): Violation[] {
  const index = new Map<string, number>();
  for (const [i, entry] of record.stream.entries()) if (!index.has(entry.key)) index.set(entry.key, i);
  const violations: Violation[] = [];
  const missedBy = new Map(record.nodes.map((node) => [node.name, node.missed ?? 0]));
  for (const chain of record.chains) {
    const counted = chain.lives.reduce((n, life) => n + (missedBy.get(life) ?? 0), 0);
    violations.push(...checkChain(chain, record.stream, index, counted));
  }
  for (const { key, answer } of record.acks) {
    const ok = (answer as { ok?: unknown } | undefined)?.ok;
    const inStream = index.has(key);
    if (ok === true && !inStream) violations.push({ invariant: 'ack', detail: `${key} was acknowledged {ok: true} but never reached the stream` });
    if (ok === false && inStream) violations.push({ invariant: 'ack', detail: `${key} was answered ${JSON.stringify(answer)} but is in the stream at ${record.stream[index.get(key)!]!.offset}` });
  }
  for (const key of record.unanswered) violations.push({ invariant: 'ack', detail: `${key} was never answered, its connection up` });
  for (const node of record.nodes) {
    if (node.killed || node.undelivered === undefined) continue;
    const missing = [...new Set(node.published.filter((key) => !index.has(key)))];
    if (missing.length > node.undelivered) {
      const named = `${missing.slice(0, DETAILS_PER_CHAIN).join(', ')}${missing.length > DETAILS_PER_CHAIN ? ', ...' : ''}`;
      violations.push({ invariant: 'uncounted', detail: `${node.name}: ${missing.length} events it took never reached the stream (${named}), ${node.undelivered} counted undelivered` });
    }
  }
  return violations;
}

/** `counted`: the stream entries the chain's nodes counted as trimmed before they read them. */
function checkChain(chain: Chain, stream: readonly StreamEntry[], index: ReadonlyMap<string, number>, counted: number): Violation[] {
  const found: Violation[] = [];
  const limited = (invariant: Invariant, detail: string): void => {
    if (found.filter((v) => v.invariant === invariant).length < DETAILS_PER_CHAIN) found.push({ invariant, detail: `${chain.name}: ${detail}` });
  };
  const rooms = new Set(chain.rooms);
  const seen = new Set<string>();
  const positions: number[] = [];
  /** The first stream position received once every join was acknowledged: where the gap check starts. */
  let first = Infinity;
  let last = -1;
  for (const [n, { key, offset }] of chain.received.entries()) {
    if (seen.has(key)) limited('duplicate', `${key} received twice (offset ${String(offset)})`);
    seen.add(key);
    const at = index.get(key);
    if (at === undefined) continue; // reached this node's clients only: outside the stream's order
    const entry = stream[at]!;
    if (!entry.rooms.some((room) => rooms.has(room))) limited('foreign', `${key} (to ${entry.rooms.join(', ')}) received, not in its rooms`);
    if (at < last) limited('order', `${key} (stream ${entry.offset}) received after ${stream[last]!.key} (stream ${stream[last]!.offset})`);
    else positions.push(at);
    if (n >= chain.joinedAt) first = Math.min(first, at);
    last = Math.max(last, at);
  }
  if (positions.length === 0 || first === Infinity) return found;
  const got = new Set(positions);
  const missed: string[] = [];
  for (let i = first; i <= last; i++) {
    const entry = stream[i]!;
    if (!got.has(i) && entry.rooms.some((room) => rooms.has(room)) && !seen.has(entry.key)) missed.push(`${entry.key}@${entry.offset}`);
  }
  if (missed.length > counted) {
    const across = chain.recoveries > 0 ? ` across ${chain.recoveries} reconnection(s) told recovered: true` : ' while connected';
    const told = counted > 0 ? ` (its nodes counted ${counted} entries missed)` : '';
    limited('gap', `${missed.length} stream events of its rooms missing${across}${told}, first ${missed.slice(0, 5).join(', ')}`);
  }
  return found;
}

/** Violations, grouped and counted, for a failure message. */
export function summarize(violations: readonly Violation[]): string {
  const counts = new Map<Invariant, number>();
  for (const v of violations) counts.set(v.invariant, (counts.get(v.invariant) ?? 0) + 1);
  const head = [...counts].map(([invariant, n]) => `${invariant}: ${n}`).join(', ');
  return [head, ...violations.slice(0, 20).map((v) => `  [${v.invariant}] ${v.detail}`)].join('\n');
}
