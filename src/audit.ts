/**
 * Who did what, for those watching (docs/watching.md#who-did-what): every
 * routed event, push, route change and refusal this node handles, with the
 * sender's credential and public id, sent as an `audit` event to the sockets
 * of this node in the room {@link AUDIT_ROOM} (the monitor page and `tail`
 * join it). Nothing is built while no one of this node is in the room.
 *
 * Local to the node: on a cluster a watcher sees what the node it is connected
 * to handled, not what the others did; routed events themselves reach it from
 * every node as usual.
 */
import createDebug from 'debug';
import type { Broker, BrokerServer } from './broker.ts';
import { AUDIT_EVENT } from './protocol.ts';
import type { Route } from './routes.ts';
import type { Sender } from './telemetry.ts';

/**
 * The log of the same records, one line each. Off by default (a line per
 * routed event); `DEBUG=spicy-action:*` turns it on with the rest.
 */
const log = createDebug('spicy-action:audit');

/** The room of the audit feed. Not a notification room (no `:`), so no `_in` can reach it. */
export const AUDIT_ROOM = '_audit';
export { AUDIT_EVENT };

/** One audit record, as watchers receive it. */
export type AuditRecord =
  | { kind: 'routed'; event: string; by: string; id: string | null; rooms: readonly string[]; at: string }
  | { kind: 'refused'; what: string; reason: string; error: string; by: string | null; id: string | null; at: string }
  | { kind: 'route'; event: string; bus: Route | undefined; by: string; id: string | null; at: string };

/**
 * Starts the audit feed of `broker` on `io`.
 *
 * @example
 * auditFeed(io, broker);
 * // a client: socket.emit('join', '_audit'); socket.on('audit', (record) => console.log(record.by, record.kind));
 */
export function auditFeed(io: BrokerServer, broker: Broker): void {
  const namespace = io.of('/');
  const watched = (): boolean => log.enabled || (namespace.adapter.rooms.get(AUDIT_ROOM)?.size ?? 0) > 0;
  const id = (from: Sender | undefined): string | null => (from ? broker.publicId(from) : null);
  const send = (record: AuditRecord): void => {
    log('%s', JSON.stringify(record));
    namespace.local.to(AUDIT_ROOM).emit(AUDIT_EVENT, record);
  };
  const { telemetry } = broker;
  telemetry.on('routed', (event, _route, targets, by, from) => {
    if (watched()) send({ kind: 'routed', event, by, id: id(from), rooms: targets.rooms, at: new Date().toISOString() });
  });
  telemetry.on('refused', (what, refusal, by, from) => {
    if (watched()) send({ kind: 'refused', what, reason: refusal.reason, error: refusal.error, by: by ?? null, id: id(from), at: new Date().toISOString() });
  });
  telemetry.on('route_changed', (event, bus, by, from) => {
    if (watched()) send({ kind: 'route', event, bus, by, id: id(from), at: new Date().toISOString() });
  });
}
