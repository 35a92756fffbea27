/**
 * spicy-action: the CCNQ4 internal message broker, as a library.
 *
 * Run it with {@link startServer}, or attach it to a Socket.IO server and
 * Express app of your own with {@link attachBroker}.
 */
export { httpAccess, httpToken, openAccessWarning, socketAccess, tokenChecker, UNAUTHORIZED } from './access.ts';
export type { AccessAttempt, AccessObserver } from './access.ts';
export { SlowConsumerGuard, unsentBytes } from './backpressure.ts';
export type { SlowConsumerEvents } from './backpressure.ts';
export { attachBroker, Broker, DEFAULT_LIMITS } from './broker.ts';
export type { BrokerEvents, BrokerLimits, BrokerOptions, BrokerServer, BrokerSocket } from './broker.ts';
export { DEFAULT_BUSES, loadBuses, parseBuses, BusesError } from './buses.ts';
export type { Buses, BusesFile } from './buses.ts';
export { Cluster, ClusterStartError, startCluster } from './cluster.ts';
export type { ClusterEvents } from './cluster.ts';
export { DEFAULT_SETTINGS, loadSettings, SettingsError } from './config.ts';
export type { Settings } from './config.ts';
export { HealthCheck } from './health.ts';
export type { HealthOptions, HealthReport, Phase, RedisStateSource } from './health.ts';
export { watchMessageSize } from './message-size.ts';
export { createMetrics, metricsHandler, UNROUTED_LABEL } from './metrics.ts';
export type { BackpressureSource, MetricsSources } from './metrics.ts';
export { monitorAssetsRouter, monitorConfig, monitorConfigRouter, MONITOR_DIR } from './monitor.ts';
export type { MonitorConfig } from './monitor.ts';
export { notifyRouter } from './notify.ts';
export { CONTROL_EVENTS, RESERVED_EVENTS } from './protocol.ts';
export type { Ack, ClientToServerEvents, RedisState, RegisterRequest, Refusal, RefusalReason, ServerToClientEvents } from './protocol.ts';
export { DEFAULT_ROUTES, RouteTable } from './routes.ts';
export type { Route, RouteChange } from './routes.ts';
export { startServer, socketOptions, StartError } from './server.ts';
export type { RunningBroker } from './server.ts';
export { computeTargets, notifyTargets } from './targets.ts';
export type { TargetLimits, Targets } from './targets.ts';
