//! The resolver against an in-memory NVS: trust, gaps, revocation, layouts,
//! ordering, caching, stale answers, deadlines and coalescing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use ness_core::emercoin::{MessageSignature, Network, PrivateKey};
use ness_core::enumer::{AnswerSource, Distrust, E164, NameSource, ResolveError, Resolver, ResolverConfig};
use ness_core::nvs::{NameEntry, NameValue, NvsError};
use tokio::time::Duration;

#[derive(Default)]
struct MemoryNvs {
    names: Mutex<HashMap<String, NameEntry>>,
    reads: AtomicUsize,
    down: AtomicBool,
    hang: AtomicBool,
}

impl MemoryNvs {
    fn put(&self, name: &str, value: &str, owner: &str) {
        self.names.lock().unwrap().insert(name.to_owned(), NameEntry {
            name: name.to_owned(),
            value: NameValue::from(value),
            txid: "00".repeat(32),
            address: owner.to_owned(),
            vout: 0,
            expires_in: 1000,
            expires_at: 2000,
            time: 0,
            expired: false,
            deleted: false,
        });
    }
    fn remove(&self, name: &str) {
        self.names.lock().unwrap().remove(name);
    }
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl NameSource for MemoryNvs {
    async fn name_show(&self, name: &str) -> Result<Option<NameEntry>, NvsError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(NvsError::Unreachable { url: "http://127.0.0.1:6662/".into(), detail: "refused".into() });
        }
        Ok(self.names.lock().unwrap().get(name).cloned().filter(NameEntry::is_live))
    }
}

struct World {
    nvs: Arc<MemoryNvs>,
    verifier: PrivateKey,
    verifier_addr: String,
}

impl World {
    fn new() -> Self {
        let nvs = Arc::new(MemoryNvs::default());
        let verifier = PrivateKey::generate();
        let verifier_addr = verifier.p2wpkh_address(Network::Regtest).unwrap().to_string();
        nvs.put("ver:enum", "Test verifier\nSRL=4|srl:enum-%02x", &verifier_addr);
        World { nvs, verifier, verifier_addr }
    }

    fn sig(&self, name: &str) -> String {
        format!("SIG=ver:enum|{}", MessageSignature::sign(&self.verifier, name.as_bytes()).to_base64())
    }

    fn signed(&self, name: &str, lines: &str) {
        let value = format!("{lines}\n{}", self.sig(name));
        self.nvs.put(name, &value, "owner-address");
    }

    fn resolver(&self, config: ResolverConfig) -> Resolver<Arc<MemoryNvs>> {
        Resolver::new(self.nvs.clone(), config)
    }
}

fn num(s: &str) -> E164 {
    E164::parse(s).unwrap()
}

fn uris(answer: &ness_core::enumer::EnumAnswer) -> Vec<(u16, u16, String)> {
    answer.routes("sip").map(|n| (n.order, n.preference, n.uri.clone().unwrap())).collect()
}

#[tokio::test]
async fn signed_records_in_rfc_3403_order() {
    let w = World::new();
    w.signed("enum:15551234567:0", "E2U+sip=200|10|!^(.*)$!sip:\\1@backup.example.org!\nE2U+sip=100|20|!^.*$!sip:second@a.example!");
    w.signed("enum:15551234567:1", "E2U+sip=100|10|!^\\+1(.*)$!sip:\\1@pbx.example.org!\nE2U+iax2=50|1|!^.*$!iax2:x@y!\nTTL=120");
    let r = w.resolver(ResolverConfig::default());
    let l = r.lookup(&num("+15551234567")).await.unwrap();
    assert_eq!(l.source, AnswerSource::Node);
    assert_eq!(uris(&l.answer), vec![
        (100, 10, "sip:5551234567@pbx.example.org".into()),
        (100, 20, "sip:second@a.example".into()),
        (200, 10, "sip:+15551234567@backup.example.org".into()),
    ]);
    // The iax2 NAPTR sorts first overall but is not a sip route.
    assert_eq!(l.answer.naptrs[0].service, "E2U+iax2");
    assert_eq!(l.answer.ttl(), Some(120));
    assert!(l.answer.records.iter().all(|r| r.signed_by.as_deref() == Some("ver:enum")));
}

#[tokio::test]
async fn squatters_gaps_revocations_and_moved_verifiers_are_ignored() {
    let w = World::new();
    let n = num("+4930123456");
    w.signed("enum:4930123456:0", "E2U+sip=100|10|!^.*$!sip:owner@good.example!");
    // An unsigned squatter at :1, a record signed by an unknown verifier at :2.
    w.nvs.put("enum:4930123456:1", "E2U+sip=1|1|!^.*$!sip:evil@squatter.example!", "squatter");
    w.nvs.put("enum:4930123456:2", "E2U+sip=1|1|!^.*$!sip:x@y!\nSIG=ver:other|AAAA", "x");
    // A signed record after a gap at :3 is never read.
    w.signed("enum:4930123456:4", "E2U+sip=1|1|!^.*$!sip:hidden@gap.example!");
    let r = w.resolver(ResolverConfig::default());
    let a = r.lookup(&n).await.unwrap().answer;
    assert_eq!(uris(&a), vec![(100, 10, "sip:owner@good.example".into())]);
    let reasons: Vec<_> = a.ignored.iter().map(|i| (i.name.as_str(), i.reason.clone())).collect();
    assert_eq!(reasons, vec![
        ("enum:4930123456:1", Distrust::Unsigned),
        ("enum:4930123456:2", Distrust::UnknownVerifier("ver:other".into())),
    ]);

    // Revoke :0 through the verifier's SRL bucket.
    let srl = ness_core::enumer::trust::srl_hash(b"enum:4930123456:0") & 15;
    w.nvs.put(&format!("srl:enum-{srl:02x}"), "enum:4930123456:0\nenum:1:0", "verifier");
    r.flush();
    let a = r.lookup(&n).await.unwrap().answer;
    assert!(!a.is_found());
    assert!(matches!(&a.ignored[0].reason, Distrust::Revoked { srl_record, .. } if srl_record == &format!("srl:enum-{srl:02x}")));

    // The verifier name moves to another key: its old signatures stop counting.
    w.nvs.remove(&format!("srl:enum-{srl:02x}"));
    let other = PrivateKey::generate().p2pkh_address(Network::Regtest).to_string();
    w.nvs.put("ver:enum", "Test verifier", &other);
    r.flush();
    let a = r.lookup(&n).await.unwrap().answer;
    assert_eq!(a.ignored[0].reason, Distrust::BadSignature("ver:enum".into()));
    w.nvs.put("ver:enum", "Test verifier", &w.verifier_addr);
    r.flush();
    assert!(r.lookup(&n).await.unwrap().answer.is_found());

    // With trust off, the squatter counts (and sorts first).
    let open = w.resolver(ResolverConfig {
        trust: ness_core::enumer::TrustPolicy { verifiers: vec![], require_signature: false },
        ..Default::default()
    });
    let a = open.lookup(&n).await.unwrap().answer;
    assert_eq!(a.best("sip").unwrap().uri.as_deref(), Some("sip:evil@squatter.example"));
}

#[tokio::test]
async fn privatenumer_layout_is_opt_in() {
    let w = World::new();
    w.nvs.put(
        "enum:0.9.8.7.6.5.4.3.2.1.e164.arpa",
        r#""!^.*$!sip:user@domain.com!"|"!^.*$!sip:backup@domain.com!u""#,
        "EXowner",
    );
    let n = num("+1234567890");
    let off = w.resolver(ResolverConfig::default());
    assert!(!off.lookup(&n).await.unwrap().answer.is_found());
    let on = w.resolver(ResolverConfig { privatenumer_layout: true, ..Default::default() });
    let a = on.lookup(&n).await.unwrap().answer;
    assert_eq!(a.layout, ness_core::enumer::Layout::Privatenumer);
    assert_eq!(uris(&a), vec![(0, 10, "sip:user@domain.com".into()), (1, 10, "sip:backup@domain.com".into())]);
}

#[tokio::test(start_paused = true)]
async fn cache_negative_cache_and_stale_if_error() {
    let w = World::new();
    w.signed("enum:15551234567:0", "E2U+sip=100|10|!^.*$!sip:a@b!\nTTL=60");
    let r = w.resolver(ResolverConfig { ttl_cap: Duration::from_secs(30), ..Default::default() });
    let n = num("+15551234567");
    r.lookup(&n).await.unwrap();
    let reads = w.nvs.reads();
    // Within the capped TTL: no node read.
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(r.lookup(&n).await.unwrap().source, AnswerSource::Cache);
    assert!(r.cached(&n).is_some());
    assert_eq!(w.nvs.reads(), reads);
    // Past it: the node is asked again; with the node down, the stale answer is served.
    tokio::time::advance(Duration::from_secs(2)).await;
    w.nvs.down.store(true, Ordering::SeqCst);
    let l = r.lookup(&n).await.unwrap();
    assert!(matches!(l.source, AnswerSource::Stale(ResolveError::Node(NvsError::Unreachable { .. }))));
    assert_eq!(l.answer.best("sip").unwrap().uri.as_deref(), Some("sip:a@b"));
    assert_eq!(r.stats().snapshot().stale_answers, 1);
    // Beyond the stale period, or never cached: the error itself.
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert!(matches!(r.lookup(&n).await, Err(ResolveError::Node(_))));
    // Negative answers are cached for the negative TTL.
    w.nvs.down.store(false, Ordering::SeqCst);
    let missing = num("+15550000000");
    assert!(!r.lookup(&missing).await.unwrap().answer.is_found());
    let reads = w.nvs.reads();
    assert_eq!(r.lookup(&missing).await.unwrap().source, AnswerSource::Cache);
    assert_eq!(w.nvs.reads(), reads);
    assert_eq!(r.stats().snapshot().negative_hits, 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_node_meets_the_deadline() {
    let w = World::new();
    w.nvs.hang.store(true, Ordering::SeqCst);
    let r = w.resolver(ResolverConfig { lookup_timeout: Duration::from_millis(250), ..Default::default() });
    let started = tokio::time::Instant::now();
    let e = r.lookup(&num("+15551234567")).await.unwrap_err();
    assert_eq!(e, ResolveError::Deadline(Duration::from_millis(250)));
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(r.stats().snapshot().deadlines, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_read() {
    let w = World::new();
    w.signed("enum:15551234567:0", "E2U+sip=100|10|!^.*$!sip:a@b!");
    let r = Arc::new(w.resolver(ResolverConfig::default()));
    let n = num("+15551234567");
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let r = r.clone();
            let n = n.clone();
            tokio::spawn(async move { r.lookup(&n).await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().answer.is_found());
    }
    // One pass over the records: :0, :1 (missing) and the verifier.
    assert_eq!(r.stats().snapshot().node_lookups, 1);
    assert_eq!(w.nvs.reads(), 4, "ver:enum, :0, srl bucket, :1");
}

#[tokio::test]
async fn a_signature_is_checked_once_per_record_and_again_when_it_changes() {
    let w = World::new();
    let n = num("+4420700000");
    w.signed("enum:4420700000:0", "E2U+sip=100|10|!^.*$!sip:a@one.example!");
    let r = w.resolver(ResolverConfig::default());
    assert!(r.lookup(&n).await.unwrap().answer.is_found());
    assert_eq!(r.stats().snapshot().signatures_checked, 1);

    // Read again after the cache is gone: same bytes, same outcome, no new check.
    r.flush();
    assert!(r.lookup(&n).await.unwrap().answer.is_found());
    assert_eq!(r.stats().snapshot().signatures_checked, 1);

    // A forged signature in the verifier's name is a new fact and is checked.
    let forger = PrivateKey::generate();
    let forged = MessageSignature::sign(&forger, b"enum:4420700000:0").to_base64();
    w.nvs.put("enum:4420700000:0", &format!("E2U+sip=100|10|!^.*$!sip:evil@forged.example!\nSIG=ver:enum|{forged}"), "x");
    r.flush();
    let a = r.lookup(&n).await.unwrap().answer;
    assert!(!a.is_found());
    assert_eq!(a.ignored[0].reason, Distrust::BadSignature("ver:enum".into()));
    assert_eq!(r.stats().snapshot().signatures_checked, 2);
}

#[tokio::test(start_paused = true)]
async fn revocation_lists_are_shared_by_misses_and_kept_no_longer_than_ttl_cap() {
    let w = World::new();
    let r = w.resolver(ResolverConfig { ttl_cap: Duration::from_secs(30), ..Default::default() });
    // Many numbers whose records hash into the same few SRL buckets (SRL=4: 16).
    for i in 0..40 {
        w.signed(&format!("enum:4420700{i:04}:0"), "E2U+sip=100|10|!^.*$!sip:a@b!");
    }
    for i in 0..40 {
        assert!(r.lookup(&num(&format!("+4420700{i:04}"))).await.unwrap().answer.is_found());
    }
    // Per number: `:0` and `:1`; the verifier once; each bucket at most once.
    let reads = w.nvs.reads();
    assert!(reads <= 40 * 2 + 1 + 16, "{reads} node reads");

    // A revocation is seen once both the answer and the SRL record have expired.
    let victim = "enum:44207000007:0";
    let bucket = ness_core::enumer::trust::srl_hash(victim.as_bytes()) & 15;
    w.nvs.put(&format!("srl:enum-{bucket:02x}"), victim, "verifier");
    let n = num("+44207000007");
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(!r.lookup(&n).await.unwrap().answer.is_found(), "both expired: the revocation applies");
    // And `flush` applies one at once.
    w.nvs.put(&format!("srl:enum-{bucket:02x}"), "", "verifier");
    r.flush();
    assert!(r.lookup(&n).await.unwrap().answer.is_found());
}

#[tokio::test]
async fn reconfiguring_keeps_the_cache_unless_trust_changes() {
    let w = World::new();
    w.signed("enum:15551234567:0", "E2U+sip=100|10|!^.*$!sip:a@b!");
    let n = num("+15551234567");
    let r = w.resolver(ResolverConfig::default());
    r.lookup(&n).await.unwrap();
    let reads = w.nvs.reads();

    // Tunables only: the same cache, no node read.
    let tuned = ResolverConfig { lookup_timeout: Duration::from_millis(300), ttl_cap: Duration::from_secs(60), ..Default::default() };
    let (r2, carry) = r.reconfigured(w.nvs.clone(), tuned.clone());
    assert_eq!(carry, ness_core::enumer::CacheCarry::Kept);
    assert_eq!(r2.lookup(&n).await.unwrap().source, AnswerSource::Cache);
    assert_eq!(w.nvs.reads(), reads);
    assert_eq!(r2.config().lookup_timeout, Duration::from_millis(300));
    assert_eq!(r2.cached_numbers(), vec![Box::<str>::from("15551234567")]);

    // A new cache size: copied.
    let (r3, carry) = r2.reconfigured(w.nvs.clone(), ResolverConfig { cache_capacity: 50, ..tuned.clone() });
    assert_eq!(carry, ness_core::enumer::CacheCarry::Resized);
    assert_eq!(r3.lookup(&n).await.unwrap().source, AnswerSource::Cache);

    // Another verifier: what the old one vouched for is forgotten.
    let other = ResolverConfig {
        trust: ness_core::enumer::TrustPolicy { verifiers: vec!["ver:other".into()], require_signature: true },
        ..tuned
    };
    let (r4, carry) = r3.reconfigured(w.nvs.clone(), other);
    assert_eq!(carry, ness_core::enumer::CacheCarry::Flushed);
    let l = r4.lookup(&n).await.unwrap();
    assert_eq!(l.source, AnswerSource::Node);
    assert!(!l.answer.is_found());
}
