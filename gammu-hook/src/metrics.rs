//! The forwarder's `/metrics` (Prometheus text): attempts and their outcomes, and
//! the spool by state, so an operator can alert on held or piling-up messages.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::spool::Counts;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub attempts: Counter,
    pub delivered: Counter,
    pub failures: Family<ReasonLabels, Counter>,
    pub held: Counter,
    pub imported: Counter,
    spool: Family<StateLabels, Gauge<i64, AtomicI64>>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("ness_sms");
        let m = Metrics {
            attempts: Counter::default(),
            delivered: Counter::default(),
            failures: Family::default(),
            held: Counter::default(),
            imported: Counter::default(),
            spool: Family::default(),
            registry: Registry::default(),
        };
        registry.register("delivery_attempts", "Delivery attempts made", m.attempts.clone());
        registry.register("delivered", "Messages delivered with a valid receipt", m.delivered.clone());
        registry.register(
            "delivery_failures",
            "Failed attempts by reason (connect, http, receipt, unroutable, seal)",
            m.failures.clone(),
        );
        registry.register("held", "Messages held after retrying for hold_after_hours", m.held.clone());
        registry.register("fallback_imported", "Messages moved from fallback files into the spool", m.imported.clone());
        registry.register("spool_messages", "Messages in the spool by state", m.spool.clone());
        Arc::new(Metrics { registry, ..m })
    }

    pub fn fail(&self, reason: &'static str) {
        self.failures.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn set_counts(&self, c: &Counts) {
        for (state, n) in [("pending", c.pending), ("delivered", c.delivered), ("held", c.held), ("dropped", c.dropped)] {
            self.spool.get_or_create(&StateLabels { state }).set(n as i64);
        }
    }

    pub fn spool_gauge(&self, state: &'static str) -> i64 {
        self.spool.get_or_create(&StateLabels { state }).get()
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("cannot encode metrics: {e}");
        }
        out
    }
}

/// Serve `/metrics` until the runtime ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move { ([("content-type", "text/plain; version=0.0.4")], m.encode()) }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("the metrics server stopped: {e}");
    }
}
