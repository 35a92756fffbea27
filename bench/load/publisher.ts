/**
 * The publisher (forked by bench/run.ts): one socket.io-client 4.x WebSocket
 * connection per URL of each target (a publisher on each node of a cluster,
 * taking events in turn), emitting `call` events either flat out (never more
 * than `window` events ahead of the slowest subscriber, as the orchestrator
 * relays) or at a fixed rate, until told to stop.
 */
import { io, type Socket } from 'socket.io-client';
import type { PublisherCommand, PublisherReport } from '../messages.ts';
import { callEvent } from '../payload.ts';

const now = (): number => performance.timeOrigin + performance.now();
const send = (report: PublisherReport): void => {
  process.send?.(report);
};

const sockets = new Map<string, Socket[]>();
let running: { run: number; stop: () => number } | undefined;

function connect(name: string, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    socket.once('connect', () => {
      sockets.set(name, [...(sockets.get(name) ?? []), socket]);
      resolve();
    });
    socket.once('connect_error', (error) => reject(new Error(`publisher cannot connect to ${url}: ${error.message}`)));
  });
}

/** Flat out: emit while fewer than `window` events are ahead of the slowest subscriber. */
function runMax(through: readonly Socket[], run: number, window: number): { run: number; stop: () => number; allow: (upTo: number) => void } {
  let seq = 0;
  let allowed = window;
  let stopped = false;
  let scheduled = false;
  const pump = (): void => {
    scheduled = false;
    let burst = 0;
    while (!stopped && seq < allowed && burst < 64) {
      seq++;
      burst++;
      through[seq % through.length]!.emit('call', callEvent({ run, seq, t: now() }));
    }
    // Let the socket write between bursts; the next `allow` wakes us when gated.
    if (!stopped && seq < allowed) schedule();
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(pump);
  };
  schedule();
  return {
    run,
    stop: () => {
      stopped = true;
      return seq;
    },
    allow: (upTo) => {
      if (upTo > allowed) {
        allowed = upTo;
        schedule();
      }
    },
  };
}

/** At `rate` events per second, on a schedule, whatever the receivers do. */
function runRate(through: readonly Socket[], run: number, rate: number): { run: number; stop: () => number } {
  let seq = 0;
  const start = now();
  const tick = (): void => {
    const due = Math.floor(((now() - start) / 1000) * rate);
    while (seq < due) {
      seq++;
      through[seq % through.length]!.emit('call', callEvent({ run, seq, t: now() }));
    }
  };
  const timer = setInterval(tick, 1);
  return {
    run,
    stop: () => {
      clearInterval(timer);
      return seq;
    },
  };
}

let allow: ((upTo: number) => void) | undefined;

process.on('message', (command: PublisherCommand) => {
  switch (command.type) {
    case 'connect':
      Promise.all(command.targets.flatMap((t) => t.urls.map((url) => connect(t.name, url)))).then(
        () => send({ type: 'connected' }),
        (error: Error) => send({ type: 'failed', error: error.message }),
      );
      return;
    case 'start': {
      const socket = sockets.get(command.target);
      if (!socket?.length) return send({ type: 'failed', error: `no target ${command.target}` });
      if (command.mode === 'max') {
        const max = runMax(socket, command.run, command.window);
        allow = max.allow;
        running = max;
      } else {
        allow = undefined;
        running = runRate(socket, command.run, command.rate);
      }
      return;
    }
    case 'allow':
      if (running?.run === command.run) allow?.(command.upTo);
      return;
    case 'stop': {
      const sent = running?.stop() ?? 0;
      running = undefined;
      allow = undefined;
      send({ type: 'stopped', sent, cpu: process.cpuUsage() });
      return;
    }
    case 'cpu':
      send({ type: 'cpu', id: command.id, cpu: process.cpuUsage() });
      return;
    case 'close':
      for (const socket of [...sockets.values()].flat()) socket.close();
      setTimeout(() => process.exit(0), 100);
      return;
  }
});
process.on('disconnect', () => process.exit(0));
