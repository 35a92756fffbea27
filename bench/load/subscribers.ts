/**
 * A subscriber generator (forked by bench/run.ts): opens many socket.io-client
 * 4.x WebSocket connections to each target, joins rooms by layout, counts
 * the events received and times them (publish → receive), and reports on
 * request over IPC. Several of these run at once so that 1,000 subscribers
 * are not all on one event loop.
 */
import { io, type Socket } from 'socket.io-client';
import type { BenchStamp } from '../payload.ts';
import { CALL_IN_ROOMS } from '../../test/helpers/payloads.ts';
import type { Layout, SubscriberCommand, SubscriberReport, Target } from '../messages.ts';
import { Reservoir } from '../stats.ts';

const now = (): number => performance.timeOrigin + performance.now();
const send = (report: SubscriberReport): void => {
  process.send?.(report);
};

interface Sub {
  socket: Socket;
  run: number;
  last: number;
}

interface TargetState {
  subs: Sub[];
  delivered: number;
  unique: number;
  recording: boolean;
  latency: Reservoir;
}

const targets = new Map<string, TargetState>();
let progress: { target: string; run: number; min: number } | undefined;

/**
 * Rooms of the subscriber numbered `index`. `bus`: `calls` only. `in`: four
 * groups spread over the bus and the `_in` rooms, some in several, so that
 * exactly-once delivery has duplicates to remove.
 */
function roomsOf(layout: Layout, index: number): string[] {
  if (layout === 'bus') return ['calls'];
  const [endpoint, number, domain] = CALL_IN_ROOMS;
  switch (index % 4) {
    case 0:
      return ['calls'];
    case 1:
      return [endpoint];
    case 2:
      return ['calls', number];
    default:
      return [endpoint, number, domain];
  }
}

function open(url: string, rooms: string[], state: TargetState, event: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 60_000 });
    const sub: Sub = { socket, run: 0, last: 0 };
    socket.on(event, (data: { bench?: BenchStamp }) => {
      state.delivered++;
      const stamp = data?.bench;
      if (!stamp) return;
      if (stamp.run !== sub.run || stamp.seq > sub.last) {
        sub.run = stamp.run;
        sub.last = stamp.seq;
        state.unique++;
        if (state.recording) state.latency.add(now() - stamp.t);
      }
    });
    socket.once('connect_error', (error) => reject(new Error(`cannot connect to ${url}: ${error.message}`)));
    socket.once('connect', () => {
      Promise.all(rooms.map((room) => socket.timeout(60_000).emitWithAck('join', room)))
        .then(() => {
          state.subs.push(sub);
          resolve();
        })
        .catch((error: Error) => reject(new Error(`join on ${url}: ${error.message}`)));
    });
  });
}

async function connectAll(list: readonly Target[], count: number, first: number, layout: Layout, event: string): Promise<void> {
  const jobs: (() => Promise<void>)[] = [];
  for (const target of list) {
    const state: TargetState = { subs: [], delivered: 0, unique: 0, recording: false, latency: new Reservoir(20_000) };
    targets.set(target.name, state);
    for (let i = 0; i < count; i++) {
      const index = first + i;
      const url = target.urls[index % target.urls.length] as string;
      jobs.push(() => open(url, roomsOf(layout, index), state, event));
    }
  }
  // A bounded number of handshakes at a time: a burst of thousands would time out.
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) await (jobs[next++] as () => Promise<void>)();
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

// While the publisher runs flat out, tell how far the slowest socket is, so it never runs far ahead.
setInterval(() => {
  if (!progress) return;
  const state = targets.get(progress.target);
  if (!state) return;
  let min = Number.POSITIVE_INFINITY;
  for (const sub of state.subs) min = Math.min(min, sub.run === progress.run ? sub.last : 0);
  if (min !== progress.min && Number.isFinite(min)) {
    progress.min = min;
    send({ type: 'progress', target: progress.target, run: progress.run, min });
  }
}, 5).unref();

process.on('message', (command: SubscriberCommand) => {
  switch (command.type) {
    case 'connect': {
      const started = Date.now();
      connectAll(command.targets, command.count, command.first, command.layout, command.event).then(
        () => send({ type: 'connected', sockets: [...targets.values()].reduce((n, t) => n + t.subs.length, 0), ms: Date.now() - started }),
        (error: Error) => send({ type: 'failed', error: error.message }),
      );
      return;
    }
    case 'snapshot': {
      const state = targets.get(command.target);
      if (!state) return send({ type: 'failed', error: `no target ${command.target}` });
      let latency: { values: number[]; seen: number } | undefined;
      if (command.stopLatency) {
        state.recording = false;
        latency = { values: [...state.latency.values()], seen: state.latency.seen };
      }
      if (command.startLatency) {
        state.latency.clear();
        state.recording = true;
      }
      send({ type: 'snapshot', id: command.id, delivered: state.delivered, unique: state.unique, latency, cpu: process.cpuUsage() });
      return;
    }
    case 'progress':
      progress = command.target === null ? undefined : { target: command.target, run: command.run, min: -1 };
      return;
    case 'close':
      for (const state of targets.values()) for (const sub of state.subs) sub.socket.close();
      setTimeout(() => process.exit(0), 100);
      return;
  }
});
process.on('disconnect', () => process.exit(0));
