// The monitor page: joins buses and rooms with the Socket.IO client the
// broker serves, and lists what arrives. Events are kept in a ring (the last
// N) and drawn in batches, once per animation frame, so the page stays usable
// at thousands of events per second. Payloads are untrusted: they only ever
// reach the page as text (textContent), never as HTML.
import {
  BROKER_EVENTS,
  EventLog,
  eventRooms,
  formatTime,
  isEmptyFilter,
  isUnauthorized,
  makeFilter,
  matches,
  parseLimit,
  parsePayload,
  prettyJson,
  routeTable,
  summary,
} from './model.js';

const TOKEN_KEY = 'spicy-action.token';
const ROOMS_KEY = 'spicy-action.monitor.rooms';
const LIMIT_KEY = 'spicy-action.monitor.limit';
const DEFAULT_LIMIT = 1000;
const ACK_TIMEOUT_MS = 5000;

// The page is `<base>/monitor`: everything else is relative to `<base>/`, so it works behind a path prefix.
const base = new URL('.', location.href);
const $ = (id) => document.getElementById(id);
const el = {
  connection: $('connection'),
  brokerInfo: $('broker-info'),
  rate: $('rate'),
  tokenForm: $('token-form'),
  token: $('token'),
  tokenForget: $('token-forget'),
  buses: $('buses'),
  roomForm: $('room-form'),
  room: $('room'),
  rooms: $('rooms'),
  roomMessage: $('room-message'),
  filterEvent: $('filter-event'),
  filterText: $('filter-text'),
  limit: $('limit'),
  pause: $('pause'),
  clear: $('clear'),
  viewStatus: $('view-status'),
  counts: $('counts').tBodies[0],
  sendForm: $('send-form'),
  sendEvent: $('send-event'),
  sendPayload: $('send-payload'),
  sendResult: $('send-result'),
  knownEvents: $('known-events'),
  routes: $('routes').tBodies[0],
  routesStatus: $('routes-status'),
  routesRefresh: $('routes-refresh'),
  events: $('events'),
};

const state = {
  /** Bus lists and routes from `/monitor/config.json`. */
  buses: { public: [], private: [], host: [] },
  routes: new Map(),
  /** Rooms the page wants to be in; joined again on every connection. */
  joined: new Set(readJson(sessionStorage, ROOMS_KEY, [])),
  limit: parseLimit(localStorage.getItem(LIMIT_KEY) ?? '') ?? DEFAULT_LIMIT,
  filter: makeFilter('', ''),
  paused: false,
  /** While paused, the last event that may be shown (filters still apply to those). */
  pausedAtSeq: 0,
  /** Events received while paused, not shown yet. */
  missed: 0,
  seq: 0,
  /** Events to draw at the next frame, oldest first. */
  pending: [],
  frameRequested: false,
  counts: new Map(),
  countsDirty: false,
  countsDrawnAt: 0,
  received: 0,
  receivedAtLastTick: 0,
  shown: 0,
  knownEventNames: new Set(),
  knownEventsDirty: false,
  configAskedAt: 0,
};
const log = new EventLog(state.limit);
/** The entry behind each drawn event (a `<tbody>`), for unfolding. */
const entries = new WeakMap();

function readJson(storage, key, fallback) {
  try {
    const value = JSON.parse(storage.getItem(key) ?? 'null');
    return Array.isArray(value) ? value.filter((v) => typeof v === 'string') : fallback;
  } catch {
    return fallback;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

function authHeaders(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

// ---------------------------------------------------------------- connection

function setConnection(stateName, text) {
  el.connection.dataset.state = stateName;
  el.connection.textContent = text;
}

function needToken(why) {
  setConnection('unauthorized', why);
  el.token.setAttribute('aria-invalid', 'true');
  if (document.activeElement !== el.token) el.token.focus();
}

if (typeof window.io !== 'function') {
  setConnection('error', 'The Socket.IO client did not load from the broker (socket.io/socket.io.min.js).');
  throw new Error('socket.io client missing');
}

const socket = window.io({
  path: new URL('socket.io', base).pathname,
  // Read at every (re)connection, so a token typed later is used.
  auth: (cb) => cb(token() ? { token: token() } : {}),
});

socket.on('connect', () => {
  setConnection('connected', `Connected${socket.recovered ? ' (missed events recovered)' : ''}`);
  el.token.removeAttribute('aria-invalid');
  for (const room of state.joined) joinRoom(room, { quiet: true });
  void loadConfig();
});

socket.on('welcome', (info) => {
  const name = typeof info?.name === 'string' ? info.name : 'broker';
  const version = typeof info?.version === 'string' ? info.version : '';
  el.brokerInfo.textContent = `${name} ${version} · socket ${info?.id ?? '?'}`;
  el.brokerInfo.dataset.socketId = info?.id ?? '';
});

socket.on('disconnect', (reason) => {
  setConnection('disconnected', `Disconnected (${reason}); reconnecting…`);
  // The broker let us go on purpose (a slow reader, say): come back, as a watcher would.
  if (reason === 'io server disconnect') setTimeout(() => socket.connect(), 1000);
});

socket.on('connect_error', (error) => {
  if (isUnauthorized(error)) {
    needToken('The broker refused the connection: enter its token.');
    if (!socket.active) return; // A refusal by the broker: wait for a token.
  } else {
    setConnection('disconnected', `Cannot reach the broker (${error?.message ?? 'error'}); retrying…`);
  }
});

socket.io.on('reconnect_attempt', (attempt) => {
  if (el.connection.dataset.state !== 'unauthorized') setConnection('disconnected', `Reconnecting… (attempt ${attempt})`);
});

socket.onAny((event, ...args) => {
  if (event === 'welcome') return;
  receive(event, args[0]);
});

async function loadConfig() {
  let res;
  try {
    res = await fetch(new URL('monitor/config.json', base), { headers: authHeaders(), cache: 'no-store' });
  } catch (error) {
    el.buses.textContent = `Cannot load the bus lists: ${error.message}`;
    return;
  }
  if (res.status === 401) {
    needToken('The broker asks for a token.');
    el.routesStatus.textContent = 'The broker asks for a token to show its routes.';
    return;
  }
  if (!res.ok) {
    el.buses.textContent = `Cannot load the bus lists (HTTP ${res.status}); rooms can still be joined by name.`;
    return;
  }
  const config = await res.json();
  state.buses = {
    public: config.buses?.public ?? [],
    private: config.buses?.private ?? [],
    host: config.buses?.host ?? [],
  };
  state.routes = new Map(Object.entries(config.routes ?? {}));
  for (const name of state.routes.keys()) state.knownEventNames.add(name);
  drawBuses();
  drawKnownEvents();
  void loadRoutes();
}

// ---------------------------------------------------------------- route table

/** Reads `GET /routes` (behind the token, like the configuration) and shows the table. */
async function loadRoutes() {
  let res;
  try {
    res = await fetch(new URL('routes', base), { headers: authHeaders(), cache: 'no-store' });
  } catch (error) {
    el.routesStatus.textContent = `Cannot load the route table: ${error.message}`;
    return;
  }
  if (res.status === 401) {
    el.routesStatus.textContent = 'The broker asks for a token to show its routes.';
    return;
  }
  if (!res.ok) {
    el.routesStatus.textContent = `Cannot load the route table (HTTP ${res.status}).`;
    return;
  }
  const answer = await res.json();
  const { rows, summary: line } = routeTable(answer);
  // The table is also what the rooms column reads: keep it as fresh.
  state.routes = new Map(rows.map((row) => [row.event, row.bus === '(_in only)' ? null : row.bus]));
  drawRoutes(rows);
  el.routesStatus.textContent = `${line}${typeof answer.node === 'string' ? `, from ${answer.node}` : ''}.`;
}

function drawRoutes(rows) {
  const frag = document.createDocumentFragment();
  for (const row of rows) {
    const tr = document.createElement('tr');
    tr.dataset.event = row.event;
    const event = document.createElement('td');
    event.textContent = row.event;
    const bus = document.createElement('td');
    bus.textContent = row.bus;
    const origin = document.createElement('td');
    origin.textContent = row.origin;
    if (row.set) {
      const set = document.createElement('span');
      set.className = 'set';
      set.textContent = row.set;
      origin.append(set);
    }
    tr.append(event, bus, origin);
    frag.append(tr);
  }
  el.routes.replaceChildren(frag);
}

el.routesRefresh.addEventListener('click', () => {
  el.routesStatus.textContent = 'Loading the route table…';
  void loadRoutes();
});

/** An event of unknown name may come from a route registered since: ask again, at most every 2 s. */
function refreshConfigSoon() {
  const now = Date.now();
  if (now - state.configAskedAt < 2000) return;
  state.configAskedAt = now;
  void loadConfig();
}

// ---------------------------------------------------------------- rooms

function allBuses() {
  return [...state.buses.private, ...state.buses.host, ...state.buses.public];
}

function saveRooms() {
  sessionStorage.setItem(ROOMS_KEY, JSON.stringify([...state.joined]));
}

function joinRoom(room, { quiet = false } = {}) {
  state.joined.add(room);
  saveRooms();
  drawRooms();
  if (!socket.connected) return; // Joined on connecting.
  socket.timeout(ACK_TIMEOUT_MS).emit('join', room, (error, ok) => {
    if (!error && ok === true) {
      if (!quiet) el.roomMessage.textContent = `Joined ${room}.`;
      return;
    }
    state.joined.delete(room);
    saveRooms();
    drawRooms();
    drawBuses();
    el.roomMessage.textContent = error ? `No answer to joining ${room}.` : `The broker refused to join ${room}.`;
  });
}

function leaveRoom(room) {
  state.joined.delete(room);
  saveRooms();
  drawRooms();
  drawBuses();
  if (!socket.connected) return;
  socket.timeout(ACK_TIMEOUT_MS).emit('leave', room, (error, ok) => {
    el.roomMessage.textContent = !error && ok === true ? `Left ${room}.` : `The broker did not confirm leaving ${room}.`;
  });
}

function drawBuses() {
  const groups = [
    ['Private buses', state.buses.private],
    ['Host buses', state.buses.host],
    ['Public buses', state.buses.public],
  ];
  const frag = document.createDocumentFragment();
  for (const [legend, buses] of groups) {
    if (buses.length === 0) continue;
    const fieldset = document.createElement('fieldset');
    const legendEl = document.createElement('legend');
    legendEl.textContent = legend;
    fieldset.append(legendEl);
    for (const bus of buses) {
      const label = document.createElement('label');
      label.className = 'check';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.name = 'bus';
      box.value = bus;
      box.checked = state.joined.has(bus);
      label.append(box, ` ${bus}`);
      fieldset.append(label);
    }
    frag.append(fieldset);
  }
  el.buses.replaceChildren(frag);
}

function drawRooms() {
  const buses = new Set(allBuses());
  const frag = document.createDocumentFragment();
  for (const room of state.joined) {
    if (buses.has(room)) continue;
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.textContent = room;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'leave';
    button.dataset.room = room;
    button.textContent = 'Leave';
    button.setAttribute('aria-label', `Leave ${room}`);
    li.append(name, ' ', button);
    frag.append(li);
  }
  el.rooms.replaceChildren(frag);
}

function drawKnownEvents() {
  const frag = document.createDocumentFragment();
  for (const name of [...state.knownEventNames].sort()) {
    const option = document.createElement('option');
    option.value = name;
    frag.append(option);
  }
  el.knownEvents.replaceChildren(frag);
}

el.buses.addEventListener('change', (e) => {
  const box = e.target;
  if (!(box instanceof HTMLInputElement) || box.name !== 'bus') return;
  if (box.checked) joinRoom(box.value);
  else leaveRoom(box.value);
});

el.roomForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const room = el.room.value.trim();
  if (room === '') return;
  joinRoom(room);
  drawBuses();
  el.room.value = '';
});

el.rooms.addEventListener('click', (e) => {
  const button = e.target.closest?.('button.leave');
  if (button) leaveRoom(button.dataset.room);
});

// ---------------------------------------------------------------- events

function receive(event, data) {
  const entry = { seq: ++state.seq, time: Date.now(), event, data, rooms: eventRooms(event, data, state.joined, state.routes, state.buses.host) };
  log.push(entry);
  state.received++;
  state.counts.set(event, (state.counts.get(event) ?? 0) + 1);
  state.countsDirty = true;
  if (!state.knownEventNames.has(event)) {
    state.knownEventNames.add(event);
    state.knownEventsDirty = true; // drawn with the counts, not once per new name
  }
  if (!state.routes.has(event) && !BROKER_EVENTS.has(event)) refreshConfigSoon();
  if (state.paused) {
    state.missed++;
  } else if (matches(entry, state.filter)) {
    state.pending.push(entry);
    // A hidden tab draws no frames: keep only what could be shown.
    if (state.pending.length > 2 * state.limit) state.pending = state.pending.slice(-state.limit);
  }
  requestFrame();
}

function requestFrame() {
  if (state.frameRequested) return;
  state.frameRequested = true;
  requestAnimationFrame(drawFrame);
}

function drawFrame() {
  state.frameRequested = false;
  if (state.pending.length > 0) {
    const batch = state.pending.length > state.limit ? state.pending.slice(-state.limit) : state.pending;
    state.pending = [];
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) frag.append(eventRow(batch[i]));
    el.events.insertBefore(frag, el.events.tHead.nextSibling);
    state.shown += batch.length;
    trimRows();
  }
  const now = performance.now();
  if (state.countsDirty && now - state.countsDrawnAt > 250) drawCounts(now);
  else if (state.countsDirty) requestFrame();
}

function trimRows() {
  const bodies = el.events.tBodies;
  while (state.shown > state.limit && bodies.length > 0) {
    bodies[bodies.length - 1].remove();
    state.shown--;
  }
}

function eventRow(entry) {
  const body = document.createElement('tbody');
  const tr = document.createElement('tr');
  const time = document.createElement('td');
  time.className = 'time';
  time.textContent = formatTime(entry.time);
  const event = document.createElement('td');
  event.className = 'event';
  event.textContent = entry.event;
  const rooms = document.createElement('td');
  rooms.className = 'rooms-col';
  rooms.textContent = entry.rooms.join(' ');
  rooms.title = rooms.textContent;
  const payload = document.createElement('td');
  payload.className = 'payload';
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'fold';
  button.setAttribute('aria-expanded', 'false');
  button.textContent = summary(entry.data) || '(no payload)';
  payload.append(button);
  tr.append(time, event, rooms, payload);
  body.append(tr);
  entries.set(body, entry);
  return body;
}

// Unfolding: one listener for every row.
el.events.addEventListener('click', (e) => {
  const button = e.target.closest?.('button.fold');
  if (!button) return;
  const body = button.closest('tbody');
  const entry = entries.get(body);
  if (!entry) return;
  const open = button.getAttribute('aria-expanded') === 'true';
  if (open) {
    body.querySelector('tr.detail')?.remove();
    button.setAttribute('aria-expanded', 'false');
    return;
  }
  const tr = document.createElement('tr');
  tr.className = 'detail';
  const td = document.createElement('td');
  td.colSpan = 4;
  const rooms = document.createElement('p');
  rooms.className = 'detail-rooms';
  rooms.textContent = `rooms: ${entry.rooms.length > 0 ? entry.rooms.join(', ') : '(none this page is in)'}`;
  const pre = document.createElement('pre');
  pre.tabIndex = 0;
  pre.setAttribute('aria-label', `${entry.event} payload`);
  pre.textContent = prettyJson(entry.data);
  td.append(rooms, pre);
  tr.append(td);
  body.append(tr);
  button.setAttribute('aria-expanded', 'true');
});

/** Draws again, from the log, every kept event that passes the filter. */
function redraw() {
  state.pending = [];
  for (const body of [...el.events.tBodies]) body.remove();
  const keep = state.paused ? (entry) => entry.seq <= state.pausedAtSeq && matches(entry, state.filter) : (entry) => matches(entry, state.filter);
  const shown = log.newestFirst(keep, state.limit);
  const frag = document.createDocumentFragment();
  for (const entry of shown) frag.append(eventRow(entry));
  el.events.insertBefore(frag, el.events.tHead.nextSibling);
  state.shown = shown.length;
  drawViewStatus();
}

function drawCounts(now = performance.now()) {
  state.countsDirty = false;
  if (state.knownEventsDirty) {
    state.knownEventsDirty = false;
    drawKnownEvents();
  }
  state.countsDrawnAt = now;
  const sorted = [...state.counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const frag = document.createDocumentFragment();
  for (const [name, count] of sorted) {
    const tr = document.createElement('tr');
    const nameCell = document.createElement('td');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'count-filter';
    button.dataset.event = name;
    button.textContent = name;
    button.setAttribute('aria-label', `Show only ${name} events`);
    nameCell.append(button);
    const countCell = document.createElement('td');
    countCell.className = 'num';
    countCell.textContent = count.toLocaleString('en');
    tr.append(nameCell, countCell);
    frag.append(tr);
  }
  el.counts.replaceChildren(frag);
}

el.counts.addEventListener('click', (e) => {
  const button = e.target.closest?.('button.count-filter');
  if (!button) return;
  el.filterEvent.value = button.dataset.event;
  applyFilter();
  el.filterEvent.focus();
});

function drawViewStatus() {
  const parts = [`${state.shown.toLocaleString('en')} shown of ${log.size.toLocaleString('en')} kept`];
  if (!isEmptyFilter(state.filter)) parts.push('filtered');
  if (state.paused) parts.push(`paused, ${state.missed.toLocaleString('en')} new`);
  el.viewStatus.textContent = parts.join(' · ');
}

function applyFilter() {
  state.filter = makeFilter(el.filterEvent.value, el.filterText.value);
  redraw();
}

el.filterEvent.addEventListener('input', applyFilter);
el.filterText.addEventListener('input', applyFilter);

el.pause.addEventListener('click', () => {
  state.paused = !state.paused;
  el.pause.setAttribute('aria-pressed', String(state.paused));
  el.pause.textContent = state.paused ? 'Resume' : 'Pause';
  if (state.paused) {
    state.pending = [];
    state.pausedAtSeq = state.seq;
    drawViewStatus();
  } else {
    state.missed = 0;
    redraw();
  }
});

el.clear.addEventListener('click', () => {
  log.clear();
  state.counts.clear();
  state.missed = 0;
  drawCounts();
  redraw();
});

el.limit.value = String(state.limit);
el.limit.addEventListener('change', () => {
  const limit = parseLimit(el.limit.value);
  if (limit === undefined) {
    el.limit.setAttribute('aria-invalid', 'true');
    el.viewStatus.textContent = 'Keep from 10 to 100,000 events.';
    return;
  }
  el.limit.removeAttribute('aria-invalid');
  state.limit = limit;
  localStorage.setItem(LIMIT_KEY, String(limit));
  log.resize(limit);
  redraw();
});

// Events per second, and the view's counts, once a second.
setInterval(() => {
  const rate = state.received - state.receivedAtLastTick;
  state.receivedAtLastTick = state.received;
  el.rate.textContent = `${rate.toLocaleString('en')} events/s · ${state.received.toLocaleString('en')} received`;
  drawViewStatus();
}, 1000);

// ---------------------------------------------------------------- token

el.token.value = token();
el.tokenForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const value = el.token.value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  reconnect();
});
el.tokenForget.addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  el.token.value = '';
  reconnect();
});

function reconnect() {
  setConnection('connecting', 'Connecting…');
  // Refused, the transport is still up: a new handshake on it is enough. Connected, start over.
  if (socket.connected) socket.disconnect();
  socket.connect();
  void loadConfig();
}

// ---------------------------------------------------------------- test sender

el.sendForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const via = e.submitter?.value === 'notify' ? 'notify' : 'socket';
  const event = el.sendEvent.value.trim();
  if (event === '') return;
  const payload = parsePayload(el.sendPayload.value, { objectOnly: via === 'notify' });
  if (!payload.ok) {
    el.sendPayload.setAttribute('aria-invalid', 'true');
    el.sendResult.textContent = payload.error;
    return;
  }
  el.sendPayload.removeAttribute('aria-invalid');
  if (via === 'notify') void sendNotify(event, payload.value);
  else sendEvent(event, payload.value);
});

function sendEvent(event, data) {
  if (!socket.connected) {
    el.sendResult.textContent = 'Not connected.';
    return;
  }
  const answer = (error, ack) => {
    el.sendResult.textContent = error ? `${event}: no answer from the broker` : `${event} sent: ${JSON.stringify(ack)}`;
  };
  const emitter = socket.timeout(ACK_TIMEOUT_MS);
  if (data === undefined) emitter.emit(event, answer);
  else emitter.emit(event, data, answer);
}

async function sendNotify(event, body) {
  const url = new URL(`_notify/${encodeURIComponent(event)}`, base);
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: authHeaders({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(body),
    });
    const text = await res.text();
    el.sendResult.textContent = `POST /_notify/${event}: ${res.status} ${text.slice(0, 200)}`;
    if (res.status === 401) needToken('The broker asks for a token.');
  } catch (error) {
    el.sendResult.textContent = `POST /_notify/${event} failed: ${error.message}`;
  }
}

drawRooms();
drawViewStatus();
// Now, not only on connecting: a broker that refuses the handshake over HTTP says "401" here.
void loadConfig();
