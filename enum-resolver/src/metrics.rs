//! `/metrics` in the Prometheus text format: HTTP requests and DNS queries by
//! outcome, and the resolver's counters (cache hits, node lookups, stale answers…).

use std::sync::Arc;

use ness_core::enumer::{NameSource, Resolver};
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsLabels {
    pub proto: &'static str,
    pub rcode: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub dns_queries: Family<DnsLabels, Counter>,
}

impl Metrics {
    pub fn new<S: NameSource + 'static>(resolver: Arc<Resolver<S>>) -> Self {
        let mut registry = Registry::with_prefix("ness_enum");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let dns_queries = Family::<DnsLabels, Counter>::default();
        registry.register("http_requests", "HTTP API requests by route and status", http_requests.clone());
        registry.register("dns_queries", "DNS queries by transport and response code", dns_queries.clone());
        registry.register_collector(Box::new(ResolverCollector { resolver }));
        Metrics { registry, http_requests, dns_queries }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("cannot encode metrics: {e}");
        }
        out
    }
}

struct ResolverCollector<S> {
    resolver: Arc<Resolver<S>>,
}

impl<S> std::fmt::Debug for ResolverCollector<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResolverCollector")
    }
}

impl<S: NameSource + 'static> prometheus_client::collector::Collector for ResolverCollector<S> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.resolver.stats().snapshot();
        let counters: [(&str, &str, u64); 10] = [
            ("resolver_lookups", "Lookups asked of the resolver", s.lookups),
            ("resolver_cache_hits", "Lookups answered from the cache within TTL", s.cache_hits),
            ("resolver_negative_hits", "Cache hits that were 'no records'", s.negative_hits),
            ("resolver_node_lookups", "Lookups that read the node", s.node_lookups),
            ("resolver_stale_answers", "Expired answers served because the node failed", s.stale_answers),
            ("resolver_failures", "Lookups failed by a node error", s.failures),
            ("resolver_deadlines", "Lookups that ran past their deadline", s.deadlines),
            ("resolver_nvs_reads", "name_show calls made", s.nvs_reads),
            ("resolver_signatures_checked", "Verifier signatures checked", s.signatures_checked),
            ("resolver_records_ignored", "Records ignored as untrusted or revoked", s.records_ignored),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(m)?;
        }
        let g = ConstGauge::new(self.resolver.cache_len() as i64);
        let m = encoder.encode_descriptor("resolver_cache_entries", "Numbers in the cache", None, g.metric_type())?;
        g.encode(m)?;
        Ok(())
    }
}
