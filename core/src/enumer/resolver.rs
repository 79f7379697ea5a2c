//! The ENUM resolver: number in, ordered NAPTRs out, with a cache in front of the
//! node.
//!
//! A miss reads `enum:<digits>:0`, `:1`, … until the first missing name (records
//! must be contiguous, as in emcdns), keeps the records signed by a trusted verifier
//! that has not revoked them, and — when enabled and nothing was found — reads the
//! privatenumer layout. Answers are cached for their TTL (capped), empty answers
//! for the negative TTL; when the node fails or the lookup deadline passes, an
//! expired entry still within its stale period is served instead of an error.
//! Concurrent misses for one number share a single read of the node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use tokio::time::{Duration, Instant};

use crate::emercoin::{Address, AddressKind};
use crate::nvs::{NameEntry, NvsError};

use super::answer::{EnumAnswer, IgnoredRecord, Layout, RecordInfo};
use super::cache::{AnswerCache, CacheRead};
use super::e164::E164;
use super::naptr::{Naptr, NaptrRegexp, sort_naptrs};
use super::privatenumer::parse_privatenumer_value;
use super::record::{SigEntry, parse_enumer_value};
use super::source::NameSource;
use super::trust::{Distrust, Srl, TrustPolicy, Verifier, signature_verifies};

/// Resolver settings. The defaults suit a PBX on a healthy local node.
#[derive(Clone, Debug)]
pub struct ResolverConfig {
    pub trust: TrustPolicy,
    /// Also read `enum:<reversed digits>.e164.arpa` when ENUMER has nothing.
    pub privatenumer_layout: bool,
    /// Highest record index read is `max_records - 1` (emcdns goes on until a gap).
    pub max_records: u32,
    /// Upper bound on how long a positive answer is cached.
    pub ttl_cap: Duration,
    /// How long "no records" is cached.
    pub negative_ttl: Duration,
    /// How long past its TTL an entry may be served when the node fails.
    pub stale_ttl: Duration,
    /// Serve stale entries on node failure (else fail at once).
    pub serve_stale: bool,
    /// Numbers kept in the cache.
    pub cache_capacity: usize,
    /// Deadline of one lookup, all node calls included.
    pub lookup_timeout: Duration,
    /// How long a verifier's address and SRL setting are remembered (emcdns: 3 min).
    pub verifier_ttl: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            trust: TrustPolicy::default(),
            privatenumer_layout: false,
            max_records: 32,
            ttl_cap: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
            stale_ttl: Duration::from_secs(3600),
            serve_stale: true,
            cache_capacity: 100_000,
            lookup_timeout: Duration::from_millis(2000),
            verifier_ttl: Duration::from_secs(180),
        }
    }
}

/// Why a lookup has no answer.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum ResolveError {
    #[error(transparent)]
    Node(#[from] NvsError),
    #[error("the ENUM lookup did not finish within {} ms", .0.as_millis())]
    Deadline(Duration),
}

/// Where an answer came from.
#[derive(Clone, Debug, PartialEq)]
pub enum AnswerSource {
    /// Read from the node just now.
    Node,
    /// From the cache, within its TTL.
    Cache,
    /// From the cache, past its TTL, because the node failed with this error.
    Stale(ResolveError),
}

#[derive(Clone, Debug)]
pub struct Lookup {
    pub answer: Arc<EnumAnswer>,
    pub source: AnswerSource,
    /// Until when the cache holds this answer as fresh (None for a stale answer):
    /// a server may reuse anything derived from it until then.
    pub fresh_until: Option<Instant>,
}

/// What [`Resolver::reconfigured`] did with the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheCarry {
    /// The same cache, shared with the old resolver.
    Kept,
    /// Copied into a cache of the new size.
    Resized,
    /// Trust, layout or record limit changed: the new resolver starts empty.
    Flushed,
}

/// Counters, readable at any time.
#[derive(Debug, Default)]
pub struct ResolverStats {
    pub lookups: AtomicU64,
    pub cache_hits: AtomicU64,
    pub negative_hits: AtomicU64,
    pub node_lookups: AtomicU64,
    pub stale_answers: AtomicU64,
    pub failures: AtomicU64,
    pub deadlines: AtomicU64,
    pub nvs_reads: AtomicU64,
    pub signatures_checked: AtomicU64,
    pub records_ignored: AtomicU64,
}

/// A copy of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub lookups: u64,
    pub cache_hits: u64,
    pub negative_hits: u64,
    pub node_lookups: u64,
    pub stale_answers: u64,
    pub failures: u64,
    pub deadlines: u64,
    pub nvs_reads: u64,
    pub signatures_checked: u64,
    pub records_ignored: u64,
}

impl ResolverStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            lookups: g(&self.lookups),
            cache_hits: g(&self.cache_hits),
            negative_hits: g(&self.negative_hits),
            node_lookups: g(&self.node_lookups),
            stale_answers: g(&self.stale_answers),
            failures: g(&self.failures),
            deadlines: g(&self.deadlines),
            nvs_reads: g(&self.nvs_reads),
            signatures_checked: g(&self.signatures_checked),
            records_ignored: g(&self.records_ignored),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// Signature outcomes remembered.
const SIGNATURE_CACHE: usize = 10_000;
/// Revocation-list records remembered (a verifier with `SRL=8|…` has 256).
const REVOCATION_CACHE: usize = 4096;

type Shared = Arc<OnceCell<Result<(Arc<EnumAnswer>, Instant), ResolveError>>>;

/// Verifier names → when they were read, and the verifier (None: not trusted).
type VerifierCache = HashMap<String, (Instant, Option<Arc<Verifier>>)>;
/// (record name, signature, verifier key hash) → whether the signature verified.
type SignatureCache = lru::LruCache<(String, String, [u8; 20]), bool>;
/// SRL name → when it was read, and its value.
type RevocationCache = lru::LruCache<String, (Instant, Option<Arc<str>>)>;

pub struct Resolver<S> {
    source: S,
    config: ResolverConfig,
    cache: Arc<AnswerCache>,
    verifiers: Arc<Mutex<VerifierCache>>,
    /// Outcomes of signature checks: a record fetched again after its TTL usually
    /// carries the same signature, and checking one (key recovery) is the most
    /// expensive step of a lookup. The outcome is a fact about the bytes, so it
    /// never goes stale; the verifier's current key is part of the key.
    signatures: Arc<Mutex<SignatureCache>>,
    /// SRL records by name, with when they were read. Every record a verifier
    /// signed hashes into one of a few buckets, so without this each miss would
    /// read one again. Kept no longer than a positive answer (`ttl_cap`), so a
    /// revocation takes effect within twice `ttl_cap`, or at once after `flush`.
    revocations: Arc<Mutex<RevocationCache>>,
    in_flight: Mutex<HashMap<Box<str>, Shared>>,
    stats: ResolverStats,
}

impl<S: NameSource> Resolver<S> {
    pub fn new(source: S, config: ResolverConfig) -> Self {
        Resolver {
            cache: Arc::new(AnswerCache::new(config.cache_capacity)),
            source,
            config,
            verifiers: Arc::default(),
            signatures: Arc::new(Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(SIGNATURE_CACHE).expect("non-zero"),
            ))),
            revocations: Arc::new(Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(REVOCATION_CACHE).expect("non-zero"),
            ))),
            in_flight: Mutex::new(HashMap::new()),
            stats: ResolverStats::default(),
        }
    }

    /// A resolver with new settings over `source` (a client of the same node) that
    /// keeps what this one has learned — cached answers, verifiers, signature
    /// outcomes — when the new settings would judge records the same way (same
    /// trust policy, layout and record limit). Otherwise it starts empty: a cached
    /// answer trusted under the old verifiers must not outlive them. Deadlines,
    /// TTLs and the stale policy apply to what is cached from now on. This is a
    /// PBX module's reload; a different node needs [`Resolver::new`].
    pub fn reconfigured(&self, source: S, config: ResolverConfig) -> (Resolver<S>, CacheCarry) {
        let old = &self.config;
        if old.trust != config.trust
            || old.privatenumer_layout != config.privatenumer_layout
            || old.max_records != config.max_records
        {
            return (Resolver::new(source, config), CacheCarry::Flushed);
        }
        let (cache, carry) = if self.cache.capacity() == AnswerCache::new(config.cache_capacity).capacity() {
            (self.cache.clone(), CacheCarry::Kept)
        } else {
            (Arc::new(self.cache.resized(config.cache_capacity)), CacheCarry::Resized)
        };
        let resolver = Resolver {
            source,
            cache,
            verifiers: if old.verifier_ttl == config.verifier_ttl { self.verifiers.clone() } else { Arc::default() },
            signatures: self.signatures.clone(),
            revocations: self.revocations.clone(),
            in_flight: Mutex::new(HashMap::new()),
            stats: ResolverStats::default(),
            config,
        };
        (resolver, carry)
    }

    /// The numbers the cache holds (fresh or stale), in no order.
    pub fn cached_numbers(&self) -> Vec<Box<str>> {
        self.cache.keys()
    }

    pub fn config(&self) -> &ResolverConfig {
        &self.config
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub fn stats(&self) -> &ResolverStats {
        &self.stats
    }

    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Forget every cached answer, verifier and revocation list.
    pub fn flush(&self) {
        self.cache.clear();
        self.verifiers.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.revocations.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The cached answer, if fresh; never touches the node. The hot path of DNS and
    /// HTTP servers and of SIP workers.
    pub fn cached(&self, number: &E164) -> Option<Arc<EnumAnswer>> {
        match self.cache.get(number.digits(), Instant::now()) {
            CacheRead::Fresh(a, _) => Some(a),
            _ => None,
        }
    }

    /// Resolve a number.
    pub async fn lookup(&self, number: &E164) -> Result<Lookup, ResolveError> {
        bump(&self.stats.lookups);
        let stale = match self.cache.get(number.digits(), Instant::now()) {
            CacheRead::Fresh(answer, until) => {
                bump(&self.stats.cache_hits);
                if !answer.is_found() {
                    bump(&self.stats.negative_hits);
                }
                return Ok(Lookup { answer, source: AnswerSource::Cache, fresh_until: Some(until) });
            }
            CacheRead::Stale(answer) => Some(answer),
            CacheRead::Miss => None,
        };

        let result = self.fetch_shared(number).await;
        match result {
            Ok((answer, until)) => Ok(Lookup { answer, source: AnswerSource::Node, fresh_until: Some(until) }),
            Err(e) => {
                match &e {
                    ResolveError::Deadline(_) => bump(&self.stats.deadlines),
                    ResolveError::Node(_) => bump(&self.stats.failures),
                }
                match stale {
                    Some(answer) if self.config.serve_stale => {
                        bump(&self.stats.stale_answers);
                        Ok(Lookup { answer, source: AnswerSource::Stale(e), fresh_until: None })
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// Read the node for `number`, sharing the work with concurrent callers.
    async fn fetch_shared(&self, number: &E164) -> Result<(Arc<EnumAnswer>, Instant), ResolveError> {
        let key: Box<str> = number.digits().into();
        let cell: Shared = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let result = cell
            .get_or_init(|| async {
                bump(&self.stats.node_lookups);
                let deadline = self.config.lookup_timeout;
                match tokio::time::timeout(deadline, self.fetch(number)).await {
                    Ok(Ok(answer)) => {
                        let answer = Arc::new(answer);
                        let ttl = if answer.is_found() {
                            Duration::from_secs(u64::from(answer.ttl().unwrap_or(0))).min(self.config.ttl_cap)
                        } else {
                            self.config.negative_ttl
                        };
                        let now = Instant::now();
                        self.cache.insert(number.digits(), answer.clone(), now, ttl, self.config.stale_ttl);
                        Ok((answer, now + ttl))
                    }
                    Ok(Err(e)) => Err(ResolveError::Node(e)),
                    Err(_) => Err(ResolveError::Deadline(deadline)),
                }
            })
            .await
            .clone();
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            map.remove(&key);
        }
        result
    }

    async fn show(&self, name: &str) -> Result<Option<NameEntry>, NvsError> {
        bump(&self.stats.nvs_reads);
        self.source.name_show(name).await
    }

    /// Read and judge all records of a number (no cache).
    pub async fn fetch(&self, number: &E164) -> Result<EnumAnswer, NvsError> {
        let aus = number.aus();
        let mut answer = EnumAnswer::empty(number.clone());
        // Records are read two at a time (`:0` and `:1` together, …): most numbers
        // have one record, and the read that finds the gap then costs no extra round
        // trip. They are still judged in order and the first gap ends the list.
        let mut ahead: Option<Option<NameEntry>> = None;
        for n in 0..self.config.max_records {
            let name = number.enumer_name(n);
            let entry = match ahead.take() {
                Some(e) => e,
                None if n + 1 < self.config.max_records => {
                    let next = number.enumer_name(n + 1);
                    let (this, after) = tokio::join!(self.show(&name), self.show(&next));
                    let this = this?;
                    if this.is_some() {
                        ahead = Some(after?);
                    }
                    this
                }
                None => self.show(&name).await?,
            };
            let Some(entry) = entry else { break };
            let record = parse_enumer_value(&entry.value.to_string_lossy());
            let signed_by = if self.config.trust.require_signature {
                match self.trusted_signer(&name, &record.signatures).await? {
                    Ok(verifier) => Some(verifier),
                    Err(reason) => {
                        bump(&self.stats.records_ignored);
                        tracing::debug!(record = %name, %reason, "ENUM record ignored");
                        answer.ignored.push(IgnoredRecord { name, owner: entry.address, reason });
                        continue;
                    }
                }
            } else {
                None
            };
            let index = answer.records.len();
            let ttl = record.ttl_secs();
            let mut problems = record.problems;
            for line in record.naptrs {
                match NaptrRegexp::parse(&line.regexp) {
                    Ok(regexp) => answer.naptrs.push(Naptr {
                        order: line.order,
                        preference: line.preference,
                        flags: "u".to_owned(),
                        service: line.service,
                        uri: regexp.apply(&aus),
                        regexp,
                        ttl,
                        record: index,
                    }),
                    Err(e) => problems.push(format!("{:?}: {e}", line.regexp)),
                }
            }
            answer.records.push(RecordInfo {
                name,
                owner: entry.address,
                txid: entry.txid,
                expires_in: entry.expires_in,
                ttl,
                signed_by,
                problems,
            });
        }

        if answer.naptrs.is_empty() && self.config.privatenumer_layout {
            self.fetch_privatenumer(number, &aus, &mut answer).await?;
        }
        sort_naptrs(&mut answer.naptrs);
        Ok(answer)
    }

    async fn fetch_privatenumer(&self, number: &E164, aus: &str, answer: &mut EnumAnswer) -> Result<(), NvsError> {
        let name = number.privatenumer_name();
        let Some(entry) = self.show(&name).await? else { return Ok(()) };
        let entries = parse_privatenumer_value(&entry.value.to_string_lossy());
        if entries.is_empty() {
            return Ok(());
        }
        let index = answer.records.len();
        let mut problems = Vec::new();
        for e in entries {
            match NaptrRegexp::parse(&e.naptr_regexp()) {
                Ok(regexp) => answer.naptrs.push(Naptr {
                    order: e.order,
                    preference: e.preference,
                    flags: "u".to_owned(),
                    service: "E2U+sip".to_owned(),
                    uri: regexp.apply(aus),
                    regexp,
                    ttl: super::record::DEFAULT_TTL_SECS,
                    record: index,
                }),
                Err(err) => problems.push(format!("{:?}: {err}", e.naptr_regexp())),
            }
        }
        answer.layout = Layout::Privatenumer;
        answer.records.push(RecordInfo {
            name,
            owner: entry.address,
            txid: entry.txid,
            expires_in: entry.expires_in,
            ttl: super::record::DEFAULT_TTL_SECS,
            signed_by: None,
            problems,
        });
        Ok(())
    }

    /// The verifier whose signature makes `name` trusted, or why none does.
    async fn trusted_signer(&self, name: &str, sigs: &[SigEntry]) -> Result<Result<String, Distrust>, NvsError> {
        let mut why = Distrust::Unsigned;
        for sig in sigs {
            if !self.config.trust.trusts(&sig.verifier) {
                if matches!(why, Distrust::Unsigned) {
                    why = Distrust::UnknownVerifier(sig.verifier.clone());
                }
                continue;
            }
            let Some(verifier) = self.verifier(&sig.verifier).await? else {
                why = Distrust::VerifierUnavailable(sig.verifier.clone());
                continue;
            };
            if !self.signature_ok(sig, &verifier, name) {
                why = Distrust::BadSignature(sig.verifier.clone());
                continue;
            }
            if let Some(srl) = &verifier.srl {
                let srl_record = srl.record_name(name);
                // A substring test, as emcdns does.
                if self.revocation_list(&srl_record).await?.is_some_and(|list| list.contains(name)) {
                    why = Distrust::Revoked { verifier: verifier.name.clone(), srl_record };
                    continue;
                }
            }
            return Ok(Ok(verifier.name.clone()));
        }
        Ok(Err(why))
    }

    /// [`signature_verifies`], remembered.
    fn signature_ok(&self, sig: &SigEntry, verifier: &Verifier, name: &str) -> bool {
        let key = (name.to_owned(), sig.signature.clone(), verifier.address.hash);
        if let Some(ok) = self.signatures.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return *ok;
        }
        bump(&self.stats.signatures_checked);
        let ok = signature_verifies(sig, verifier, name);
        self.signatures.lock().unwrap_or_else(|p| p.into_inner()).put(key, ok);
        ok
    }

    /// The value of an SRL record, read at most once per `min(ttl_cap, verifier_ttl)`.
    async fn revocation_list(&self, srl_record: &str) -> Result<Option<Arc<str>>, NvsError> {
        let keep = self.config.ttl_cap.min(self.config.verifier_ttl);
        let now = Instant::now();
        if let Some((at, list)) = self.revocations.lock().unwrap_or_else(|p| p.into_inner()).get(srl_record)
            && now.duration_since(*at) < keep {
                return Ok(list.clone());
            }
        let list: Option<Arc<str>> = self.show(srl_record).await?.map(|e| e.value.to_string_lossy().into());
        if !keep.is_zero() {
            self.revocations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .put(srl_record.to_owned(), (now, list.clone()));
        }
        Ok(list)
    }

    async fn verifier(&self, name: &str) -> Result<Option<Arc<Verifier>>, NvsError> {
        let now = Instant::now();
        if let Some((at, v)) = self.verifiers.lock().unwrap_or_else(|p| p.into_inner()).get(name)
            && now.duration_since(*at) < self.config.verifier_ttl {
                return Ok(v.clone());
            }
        let verifier = self.show(name).await?.and_then(|entry| {
            let address = Address::parse(&entry.address).ok()?;
            if address.kind == AddressKind::P2sh {
                return None;
            }
            let srl = Srl::from_verifier_value(&entry.value.to_string_lossy());
            Some(Arc::new(Verifier { name: name.to_owned(), address, srl }))
        });
        self.verifiers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), (now, verifier.clone()));
        Ok(verifier)
    }
}
