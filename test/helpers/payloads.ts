/**
 * Events shaped as the real senders shape them, for the tests and the bench:
 * a `call` of about 0.5 KB (with its three `_in` rooms) as a call handler
 * emits it, and a `report_ops` body of about 1 KB as OpenSIPS posts it.
 */

/** The `_in` rooms of the sample `call`. */
export const CALL_IN_ROOMS = ['endpoint:alice@example.net', 'number:33123456789', 'number_domain:example.net'] as const;

/**
 * A `call` event as a call handler emits it at the end of a call (about 0.5 KB of JSON).
 *
 * @example
 * publisher.emit('call', SAMPLE_CALL);
 * assert.deepEqual((await listener.next('call'))[0], SAMPLE_CALL);
 */
export const SAMPLE_CALL = {
  state: 'end',
  call: '0f6e2c4a-8d1b-4c57-9a43-3b2f1e5d7c90',
  source: '33123456789',
  destination: '33987654321',
  direction: 'ingress',
  host: 'sbc1.example.net',
  number_domain: 'example.net',
  endpoint: 'alice@example.net',
  account: 'acct-000123',
  stamp: '2017-05-01T10:00:42.000Z',
  _in: CALL_IN_ROOMS,
  data: { duration: 42, billable: 40, progress: 2, answer: 2, wait: 0, hangup_cause: 'NORMAL_CLEARING', sip_code: 200 },
} as const;

/**
 * An error report of the shape the platform's reporter, the CCNQ logging
 * library `tangible`, sends over socket.io-client 2.x as `report_<method>`
 * (values as a FreeSWITCH call handler would log them); `n` varies it.
 *
 * @example
 * reporter.emit('report_ops', tangibleReport('ops', 1));
 */
export function tangibleReport(method: 'dev' | 'ops' | 'csr', n: number) {
  return {
    stamp: '2026-11-27T00:50:00.123Z',
    now: 1_795_741_800_123 + n,
    host: 'fs1.example.net',
    session: `b5c2e0a4-6b3e-4c1f-9d2a-${String(n).padStart(12, '0')}`,
    application: 'huge-play',
    method,
    event: 'call-handler',
    msg: `originate failed (${n})`,
    data: [{ call: 'c1', cause: 'NO_ROUTE_DESTINATION', code: 502 }, 'second argument', 3, null],
    logging: 'tangible:huge-play:call-handler',
  };
}

/**
 * A `report_ops` body as OpenSIPS posts it on a registrant failure (about 1 KB, with a SIP message).
 *
 * @example
 * reportOpsBody().length; // about 1000
 */
export function reportOpsBody(): string {
  const sip = [
    'REGISTER sip:example.net SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds',
    'Max-Forwards: 70',
    'To: <sip:alice@example.net>',
    'From: <sip:alice@example.net>;tag=456248',
    'Call-ID: 843817637684230@998sdasdh09',
    'CSeq: 1826 REGISTER',
    'Contact: <sip:alice@192.0.2.10:5060>',
    'Expires: 7200',
    'User-Agent: ExamplePhone/1.2.3',
    'Content-Length: 0',
  ].join('\r\n');
  return JSON.stringify({
    error: 'registrant_failure',
    application: 'opensips:registrant',
    host: 'opensips1.example.net',
    stamp: '2017-05-01T10:00:00.000Z',
    aor: 'sip:alice@example.net',
    registrar: 'sip:registrar.example.org',
    state: 'REGISTERING_STATE',
    reason: 'Request Timeout',
    code: 408,
    sip,
    padding: 'x'.repeat(348),
  });
}
