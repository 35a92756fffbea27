/** What docs/protocol.md states, written out again so that tests can hold the code to it. */

/** The default routes of docs/protocol.md#default-routes, bus by bus. */
export const DOCUMENTED_ROUTES: Readonly<Record<string, readonly string[]>> = {
  support: ['report_dev', 'report_ops', 'report_csr', 'script_register', 'pipe_blocked', 'pike_blocked'],
  calls: ['call', 'reference', 'statistics:add'],
  traces: ['trace'],
  internal: [
    'pong', 'trace_started', 'trace_completed', 'trace_error',
    'location:update', 'location:response', 'locations:response', 'presentities:response', 'active_watchers:response', 'registrants:response',
  ],
  locations: ['location', 'locations', 'registrants', 'presentities', 'active_watchers'],
};
