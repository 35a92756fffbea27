/**
 * Preloaded into every server the bench measures (`node --import tsx
 * --import ./bench/servers/probe.ts <entry>`), the broker included, so that
 * each reports its own `process.cpuUsage()` and memory over the IPC channel
 * the bench opened, without any change to the server itself. It answers
 * only when asked, so it costs nothing while a measurement runs.
 */
import { writeHeapSnapshot } from 'node:v8';
import type { ProbeReport, ProbeRequest } from '../messages.ts';

const gc = (globalThis as { gc?: () => void }).gc;

if (process.send) {
  process.on('message', (message: ProbeRequest) => {
    if (message?.type !== 'probe') return;
    if (message.gc && gc) {
      gc();
      gc();
    }
    // A heap snapshot (bench/idle-heap.ts) is written only when asked for, after the figures are read.
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    const heapSnapshot = message.heapSnapshot ? writeHeapSnapshot(message.heapSnapshot) : undefined;
    const report: ProbeReport = { type: 'probe', id: message.id, cpu, mem, ...(heapSnapshot ? { heapSnapshot } : {}) };
    process.send?.(report);
  });
  // The channel must not keep the server alive: its own shutdown decides.
  process.channel?.unref();
  process.on('disconnect', () => undefined);
}
