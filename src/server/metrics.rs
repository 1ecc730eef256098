//! Prometheus metrics (`/metrics`, in the OpenMetrics text format, by the
//! `prometheus-client` crate): requests by route, method and status and
//! their durations; bytes on the wire and bytes stored; uploads created,
//! completed, deleted and expired; appends in progress; open connections;
//! storage latencies; refusals for lack of room; hook calls, their
//! latencies and the post-hook deliveries waiting and dead. The core reports through
//! `core::observe::Observer`; the connection loop and a middleware report
//! the rest. Labels take only bounded values (route patterns, methods,
//! statuses, error codes), never IDs or addresses.

use crate::core::error::ErrorCode;
use crate::core::hooks::HookPoint;
use crate::core::observe::{Observer, StorageOp};
use crate::protocol::events::EventKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    point: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PointLabels {
    point: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, from a millisecond to about half an hour.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 22))
}

/// Every metric Ferry keeps, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Histograms<RouteLabels>,
    bytes_in: Counter,
    bytes_out: Counter,
    stored: Counter,
    uploads: Family<EventLabels, Counter>,
    writing: Gauge,
    connections: Gauge,
    storage: Histograms<OpLabels>,
    refused: Family<CodeLabels, Counter>,
    hooks: Family<HookLabels, Counter>,
    hook_durations: Histograms<PointLabels>,
    deliveries_waiting: Gauge,
    deliveries_dead: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferry");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            requests.clone(),
        );
        let durations =
            Histograms::<RouteLabels>::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's head to its answer's head, by route pattern and method",
            durations.clone(),
        );
        let bytes_in = Counter::default();
        registry.register(
            "received_bytes",
            "Bytes read from client connections",
            bytes_in.clone(),
        );
        let bytes_out = Counter::default();
        registry.register(
            "sent_bytes",
            "Bytes written to client connections",
            bytes_out.clone(),
        );
        let stored = Counter::default();
        registry.register(
            "upload_stored_bytes",
            "Upload bytes made durable and recorded",
            stored.clone(),
        );
        let uploads = Family::<EventLabels, Counter>::default();
        registry.register(
            "uploads",
            "Uploads created, completed, deleted and expired",
            uploads.clone(),
        );
        let writing = Gauge::default();
        registry.register(
            "uploads_in_progress",
            "Appends being written now",
            writing.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open now",
            connections.clone(),
        );
        let storage = Histograms::<OpLabels>::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "storage_duration_seconds",
            "Time of storage operations: store_bytes (write and, with --fsync request, sync), record_update, s3_part (one part sent to S3)",
            storage.clone(),
        );
        let refused = Family::<CodeLabels, Counter>::default();
        registry.register(
            "refusals",
            "Requests refused for lack of room, by error code (quota_exceeded, too_many_unfinished, storage_full)",
            refused.clone(),
        );
        let hooks = Family::<HookLabels, Counter>::default();
        registry.register(
            "hook_calls",
            "Hook calls by point and outcome (answered: the hook answered, allowing or refusing; failed: it could not be asked)",
            hooks.clone(),
        );
        let hook_durations =
            Histograms::<PointLabels>::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "hook_duration_seconds",
            "Time of hook calls, by point",
            hook_durations.clone(),
        );
        let deliveries_waiting = Gauge::default();
        registry.register(
            "hook_deliveries_waiting",
            "Post-hook deliveries not made yet (being retried or about to be sent)",
            deliveries_waiting.clone(),
        );
        let deliveries_dead = Gauge::default();
        registry.register(
            "hook_deliveries_dead",
            "Post-hook deliveries that failed for their whole retry window (GET /admin/hooks/dead)",
            deliveries_dead.clone(),
        );
        Metrics {
            registry,
            hooks,
            hook_durations,
            deliveries_waiting,
            deliveries_dead,
            requests,
            durations,
            bytes_in,
            bytes_out,
            stored,
            uploads,
            writing,
            connections,
            storage,
            refused,
        }
    }

    /// Everything, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// A request was answered.
    pub fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let method = method.to_string();
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.clone(),
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                method,
            })
            .observe(took.as_secs_f64());
    }

    /// A connection opened (`+1`) or closed (`-1`).
    pub fn connection(&self, delta: i64) {
        self.connections.inc_by(delta);
    }

    /// Bytes read from and written to client sockets.
    pub fn traffic(&self, read: u64, written: u64) {
        if read > 0 {
            self.bytes_in.inc_by(read);
        }
        if written > 0 {
            self.bytes_out.inc_by(written);
        }
    }
}

impl Observer for Metrics {
    fn upload(&self, kind: EventKind) {
        self.uploads
            .get_or_create(&EventLabels {
                event: kind.short(),
            })
            .inc();
    }

    fn writing(&self, delta: i64) {
        self.writing.inc_by(delta);
    }

    fn received(&self, bytes: u64) {
        self.stored.inc_by(bytes);
    }

    fn storage(&self, op: StorageOp, took: Duration) {
        self.storage
            .get_or_create(&OpLabels { op: op.as_str() })
            .observe(took.as_secs_f64());
    }

    fn refused(&self, code: ErrorCode) {
        self.refused
            .get_or_create(&CodeLabels {
                code: code.as_str(),
            })
            .inc();
    }

    fn hook(&self, point: HookPoint, answered: bool, took: Duration) {
        let outcome = if answered { "answered" } else { "failed" };
        let point = point.as_str();
        self.hooks
            .get_or_create(&HookLabels { point, outcome })
            .inc();
        self.hook_durations
            .get_or_create(&PointLabels { point })
            .observe(took.as_secs_f64());
    }

    fn deliveries(&self, waiting: u64, dead: u64) {
        self.deliveries_waiting
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        self.deliveries_dead
            .set(i64::try_from(dead).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_as_openmetrics() {
        let m = Metrics::new();
        m.request("/files/:id", "PATCH", 204, Duration::from_millis(12));
        m.upload(EventKind::Completed);
        m.refused(ErrorCode::QuotaExceeded);
        m.connection(1);
        let text = m.render();
        assert!(
            text.contains(
                r#"ferry_http_requests_total{route="/files/:id",method="PATCH",status="204"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"ferry_uploads_total{event="completed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ferry_refusals_total{code="quota_exceeded"} 1"#),
            "{text}"
        );
        assert!(text.contains("ferry_open_connections 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
