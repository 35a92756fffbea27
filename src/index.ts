/**
 * spicy-action: the CCNQ4 internal message broker, as a library.
 *
 * Run it with {@link startServer}, or attach it to a Socket.IO server and
 * Express app of your own with {@link attachBroker}.
 */
export { httpAccess, httpToken, openAccessWarning, socketAccess, tokenChecker, UNAUTHORIZED } from './guards/access.ts';
export type { AccessAttempt, AccessObserver } from './guards/access.ts';
export { SlowConsumerGuard, unsentBytes } from './guards/backpressure.ts';
export type { SlowConsumerEvents } from './guards/backpressure.ts';
export { attachBroker } from './attach.ts';
export type { AttachOptions } from './attach.ts';
export { Broker } from './broker.ts';
export type { BrokerEvents, BrokerLimits, BrokerOptions, BrokerServer, BrokerSocket } from './broker.ts';
export { DEFAULT_BUSES, loadBuses, parseBuses, BusesError } from './buses.ts';
export type { Buses, BusesFile } from './buses.ts';
export { Cluster, ClusterStartError, startCluster } from './cluster/cluster.ts';
export type { ClusterEvents } from './cluster/cluster.ts';
export { DEFAULT_SETTINGS, loadSettings, SettingsError } from './settings.ts';
export type { Settings } from './settings.ts';
export { DEFAULT_LIMITS } from './limits.ts';
export type { Limits } from './limits.ts';
export { Telemetry } from './telemetry.ts';
export type { DisconnectDetails, RouteAdminAction, TelemetryEvents } from './telemetry.ts';
export { HealthCheck } from './http/health.ts';
export type { HealthOptions, HealthReport, Phase, RedisStateSource } from './http/health.ts';
export { watchMessageSize } from './guards/message-size.ts';
export { createMetrics, EventLabels, metricsHandler, OTHER_LABEL, UNROUTED_LABEL } from './http/metrics.ts';
export type { BackpressureSource, MetricsSources } from './http/metrics.ts';
export { monitorAssetsRouter, monitorConfig, monitorConfigRouter, MONITOR_DIR } from './http/monitor.ts';
export type { MonitorConfig, MonitorSource } from './http/monitor.ts';
export { notifyRouter } from './http/notify.ts';
export { BAD_ORIGIN, handshakeOriginCheck, handshakeOriginGuard, originAllowed, pushOriginAllowed, pushOriginGuard } from './http/origin.ts';
export type { AllowedOrigins, EngineMiddleware, HandshakeRequest } from './http/origin.ts';
export { BAD_PATH_ERROR, errorAnswer, errorHandler } from './http/errors.ts';
export type { ErrorAnswer } from './http/errors.ts';
export { processSecrets, quoteArgument, REDACTED, redactText, redactUrl } from './redact.ts';
export type { PushTarget } from './http/notify.ts';
export { CONTROL_EVENTS, RESERVED_EVENTS } from './protocol.ts';
export type { Ack, ClientToServerEvents, RedisState, RegisterRequest, Refusal, PublicationOutcome, RefusalReason, ServerToClientEvents } from './protocol.ts';
export { DEFAULT_ROUTES, defaultNodeName, RouteTable } from './routes.ts';
export type { Route, RouteChange, RouteInfo, RouteKind, RouteRemoval, RouteStamp } from './routes.ts';
export { routeAdminRouter, routeListing } from './http/routes.ts';
export type { RouteAdminSource, RouteList, RouteListing, RouteRemovalAnswer } from './http/routes.ts';
export { startServer, socketOptions, StartError } from './server.ts';
export type { RunningBroker } from './server.ts';
export { computeTargets, notifyTargets } from './targets.ts';
export type { TargetLimits, Targets } from './targets.ts';
