// Types of model.js, for the Node tests that import it.
export declare const SUMMARY_LENGTH: number;
export declare const BROKER_EVENTS: ReadonlySet<string>;
/** The room of the broker's audit feed (who did what). */
export declare const AUDIT_ROOM: string;
export declare function isUnauthorized(error: unknown): boolean;

export declare class EventLog<T = unknown> {
  constructor(capacity: number);
  readonly capacity: number;
  readonly size: number;
  push(item: T): void;
  newestFirst(keep?: (item: T) => boolean, limit?: number): T[];
  resize(capacity: number): void;
  clear(): void;
}

export interface Filter {
  readonly events: readonly string[];
  readonly text: string;
}

export interface Entry {
  event: string;
  rooms: readonly string[];
  data: unknown;
  haystack?: string;
}

export declare function parseLimit(text: unknown, min?: number, max?: number): number | undefined;
export declare function payloadJson(data: unknown): string;
export declare function summary(data: unknown, max?: number): string;
export declare function prettyJson(data: unknown): string;
export declare function makeFilter(eventText: unknown, text: unknown): Filter;
export declare function isEmptyFilter(filter: Filter): boolean;
export declare function matches(entry: Entry, filter: Filter): boolean;
export declare function eventRooms(
  event: string,
  data: unknown,
  joined: ReadonlySet<string>,
  routes: ReadonlyMap<string, string | null>,
  hostBuses: readonly string[],
): string[];
export declare function formatTime(ms: number): string;
export declare function parsePayload(
  text: unknown,
  options?: { objectOnly?: boolean },
): { ok: true; value: unknown } | { ok: false; error: string };

export interface RouteRow {
  readonly event: string;
  readonly bus: string;
  readonly origin: 'registered' | 'built-in, changed' | 'built-in';
  readonly set: string;
}
export declare function formatStamp(iso: unknown): string;
export declare function routeTable(answer: unknown): { rows: RouteRow[]; summary: string };
