//! `ness-gammu-hook forward`: the long-running forwarder. It takes pending messages
//! from the spool, seals and signs each for its renter (once — the envelope is
//! stored before the first send, so retries and restarts send the same bytes and
//! the inbox can tell a repeat), POSTs it to the renter's inbox (through SOCKS5 if
//! configured), and marks it delivered only when the answer is a receipt signed by
//! the renter for exactly that envelope. Failures are retried with exponential
//! backoff and jitter; a message is held (never dropped) after `hold_after_hours`.
//!
//! One scheduler thread owns the spool and batches its writes; the HTTP attempts
//! run as tokio tasks, at most `concurrency` at a time.
//!
//! With `[hooks] script`, the Lua `on_sms(msg)` (docs/hooks.md) sees each message
//! before it is sealed: it may drop it (kept in the spool as `dropped`, with the
//! reason), tag it (the tags travel inside the envelope) or send it to another
//! route's renter by the route's `name`. A failing script is logged and the
//! message goes as without it. SIGHUP reloads the script; one that does not
//! compile keeps the running one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use ness_core::envelope::{Receipt, ReceiptTo, b64u, seal_v1, seal_v2, sign};
use ness_core::sms::{Delivery, Sms};

use ness_core::hooks::{Hooks, SmsCtx, SmsDecision};

use crate::config::Config;
use crate::http::Sender;
use crate::metrics::Metrics;
use crate::route::{Route, Routes};
use crate::spool::{self, Due, Outcome, Spool};

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
}

/// Why an attempt failed, for the log and `/metrics`.
#[derive(Debug)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

/// Send one delivery and check the receipt. Returns the receipt's JSON.
pub async fn attempt(
    sender: &Sender,
    route: &Route,
    provider: &VerifyingKey,
    body: Vec<u8>,
    envelope: &[u8],
    timeout: Duration,
) -> Result<String, Failure> {
    let fail = |reason, message: String| Failure { reason, message };
    let (status, answer) = sender.post_json(&route.inbox_url, body, timeout).await.map_err(|e| fail("connect", e))?;
    let text = String::from_utf8_lossy(&answer);
    if !(200..300).contains(&status) {
        let snippet: String = text.chars().take(200).collect();
        return Err(fail("http", format!("the inbox answered {status}: {}", snippet.trim_end())));
    }
    let receipt = Receipt::parse(&text).map_err(|e| fail("receipt", format!("not a receipt: {e}")))?;
    receipt.verify_for(&route.renter_sign, envelope).map_err(|e| fail("receipt", format!("invalid receipt: {e}")))?;
    if receipt.to != ReceiptTo::Key(b64u::encode(provider.as_bytes())) {
        return Err(fail("receipt", "the receipt is addressed to someone else".into()));
    }
    Ok(receipt.canonical(true))
}

/// The envelope for `due` under `route`: the stored one if it was sealed for this
/// route, else a new one (and `true`: it must be stored before sending).
fn envelope_for(due: &Due, route: &Route, signer: &SigningKey) -> Result<(Vec<u8>, bool), String> {
    if let Some((env, key)) = &due.envelope
        && key == &route.key
    {
        return Ok((env.clone(), false));
    }
    let sealed = match route.envelope {
        1 => seal_v1(&route.renter_box, &due.body),
        _ => {
            let id = Sms::from_json(&due.body).ok().and_then(|m| m.id_bytes()).or_else(|| {
                hex::decode(&due.id).ok().and_then(|b| b.try_into().ok())
            });
            let id = id.ok_or_else(|| format!("message {} has no usable id", due.id))?;
            seal_v2(signer, &route.renter_box, id, due.spooled_ms.max(0) as u64, &due.body)
        }
    };
    sealed.map(|e| (e, true)).map_err(|e| e.to_string())
}

fn delivery_body(route: &Route, id: &str, signer: &SigningKey, envelope: &[u8]) -> Vec<u8> {
    let sig = (route.envelope == 1).then(|| sign(signer, b64u::encode(envelope).as_bytes()));
    let d = Delivery::new(route.envelope, id, &signer.verifying_key(), envelope, sig);
    serde_json::to_vec(&d).expect("a Delivery serialises")
}

/// Retry delay after `attempts` failures: initial × 2^attempts, capped, ±25 %.
pub fn backoff(initial_ms: u64, max_ms: u64, attempts: u32) -> u64 {
    let base = initial_ms.saturating_mul(1u64 << attempts.min(40)).min(max_ms);
    let jitter: f64 = 0.75 + rand::random::<f64>() * 0.5;
    ((base as f64) * jitter) as u64
}

pub struct Forwarder {
    config: Config,
    routes: Arc<Routes>,
    signer: Arc<SigningKey>,
    clients: HashMap<Option<String>, Sender>,
    hooks: Option<Hooks>,
    pub metrics: Arc<Metrics>,
}

/// What `on_sms` made of a message.
enum Verdict {
    Drop(String),
    Deliver { tags: Vec<String>, renter: Option<String> },
}

impl Forwarder {
    pub fn new(config: Config) -> Result<Forwarder, ForwardError> {
        let keyfile = config
            .forward
            .keyfile
            .as_ref()
            .ok_or_else(|| ForwardError::Config("[forward] keyfile is not set: the provider's key signs every envelope".into()))?;
        let kf = ness_core::envelope::Keyfile::read(keyfile).map_err(|e| ForwardError::Config(e.to_string()))?;
        let seed = kf.key(ness_core::envelope::KeyRole::SignPrivate, None).map_err(|e| ForwardError::Config(e.to_string()))?;
        let signer = ness_core::envelope::sign_secret(&seed).map_err(|e| ForwardError::Config(e.to_string()))?;
        let routes = Routes::from_config(&config.routes, config.forward.socks5.as_deref()).map_err(ForwardError::Config)?;
        if routes.iter().next().is_none() {
            tracing::warn!("no [[route]] in the config: messages will wait in the spool until one is added");
        }
        let mut clients = HashMap::new();
        for proxy in routes.iter().map(|r| r.proxy.clone()).chain([None]) {
            if clients.contains_key(&proxy) {
                continue;
            }
            let client = Sender::new(proxy.as_deref(), config.forward.timeout(), config.forward.concurrency)
                .map_err(ForwardError::Config)?;
            clients.insert(proxy, client);
        }
        let hooks = match &config.hooks {
            None => None,
            Some(h) => {
                let settings = h.settings().map_err(ForwardError::Config)?;
                let hooks = Hooks::load(settings, Arc::new(ness_core::hooks::NoNode)).map_err(|e| ForwardError::Config(e.to_string()))?;
                tracing::info!("hooks: {} defines {:?}", h.script.display(), hooks.defined());
                Some(hooks)
            }
        };
        Ok(Forwarder { config, routes: Arc::new(routes), signer: Arc::new(signer), clients, hooks, metrics: Metrics::new() })
    }

    /// Ask `on_sms` about a due message (no hook, or a failing one: deliver as usual).
    fn verdict(&self, d: &Due) -> Verdict {
        let usual = Verdict::Deliver { tags: Vec::new(), renter: None };
        let Some(hooks) = &self.hooks else { return usual };
        let Ok(sms) = serde_json::from_slice::<Sms>(&d.body) else { return usual };
        let renter = self.routes.find(&d.phone_id).and_then(|r| r.name.clone()).unwrap_or_default();
        let ctx = SmsCtx { from: sms.sender, text: sms.text, phone_id: sms.phone_id, renter, received: sms.received_at };
        match hooks.on_sms(&ctx) {
            Ok(None) => usual,
            Ok(Some(SmsDecision::Drop { reason })) => Verdict::Drop(reason),
            Ok(Some(SmsDecision::Deliver { tags, renter })) => Verdict::Deliver { tags, renter },
            Err(e) => {
                tracing::warn!("{e}; message {} goes as usual", d.id);
                usual
            }
        }
    }

    /// Run until `stop` is set; then finish the attempts in flight and return.
    /// `reload`: set (by SIGHUP) to read the hooks script again.
    pub fn run(mut self, runtime: tokio::runtime::Handle, stop: Arc<AtomicBool>, reload: Arc<AtomicBool>) -> Result<(), ForwardError> {
        let mut spool = Spool::open(&self.config.spool.path, Duration::from_millis(self.config.spool.busy_timeout_ms))?;
        let fallback = self.config.spool.fallback_dir();
        let f = &self.config.forward;
        let hold_after_ms = (f.hold_after_hours as i64).saturating_mul(3_600_000);
        let (tx, rx) = mpsc::channel::<(String, Result<String, Failure>)>();
        let mut inflight: HashSet<String> = HashSet::new();
        let mut spooled_at: HashMap<String, (i64, u32)> = HashMap::new();
        let mut last_import = Instant::now() - Duration::from_secs(3600);
        let mut last_counts = Instant::now() - Duration::from_secs(3600);
        let provider = self.signer.verifying_key();
        tracing::info!(
            "forwarding from {} as {} ({} route(s), {} in flight at most)",
            self.config.spool.path.display(),
            b64u::encode(provider.as_bytes()),
            self.routes.iter().count(),
            f.concurrency
        );
        loop {
            if reload.swap(false, Ordering::Relaxed) {
                match self.hooks.as_mut() {
                    None => tracing::info!("SIGHUP: no [hooks] script to reload"),
                    Some(h) => match h.reload() {
                        Ok(()) => tracing::info!("hooks: reloaded {}, defines {:?}", h.settings().script.display(), h.defined()),
                        Err(e) => tracing::error!("{e}; the running script stays"),
                    },
                }
            }
            let stopping = stop.load(Ordering::Relaxed);
            if stopping && inflight.is_empty() {
                break;
            }
            if !stopping && last_import.elapsed() >= Duration::from_secs(10) {
                last_import = Instant::now();
                match spool::import_fallback(&mut spool, &fallback) {
                    Ok((n, problems)) => {
                        if n > 0 {
                            tracing::warn!("moved {n} message(s) from {} into the spool", fallback.display());
                            self.metrics.imported.inc_by(n as u64);
                        }
                        for p in problems {
                            tracing::error!("fallback file left in place: {p}");
                        }
                    }
                    Err(e) => tracing::error!("importing fallback files: {e}"),
                }
            }
            let mut outcomes: Vec<(String, Outcome)> = Vec::new();
            let room = f.concurrency.saturating_sub(inflight.len());
            let mut claimed = 0;
            if !stopping && room > 0 {
                let now = spool::now_ms();
                let due = spool.due(now, room, &|id| inflight.contains(id))?;
                claimed = due.len();
                let mut to_store = Vec::new();
                let mut to_send = Vec::new();
                for mut d in due {
                    let (tags, renter) = match self.verdict(&d) {
                        Verdict::Drop(reason) => {
                            tracing::info!("message {} dropped by on_sms: {reason}", d.id);
                            outcomes.push((d.id.clone(), Outcome::Dropped { reason }));
                            continue;
                        }
                        Verdict::Deliver { tags, renter } => (tags, renter),
                    };
                    if !tags.is_empty()
                        && let Ok(mut sms) = serde_json::from_slice::<Sms>(&d.body)
                    {
                        sms.tags = tags;
                        d.body = serde_json::to_vec(&sms).unwrap_or(d.body);
                    }
                    let named = renter.as_deref().and_then(|name| {
                        let r = self.routes.named(name);
                        if r.is_none() {
                            tracing::warn!("on_sms sent message {} to renter {name:?}, but no [[route]] has that name; it goes as usual", d.id);
                        }
                        r
                    });
                    let Some(route) = named.or_else(|| self.routes.find(&d.phone_id)) else {
                        self.metrics.fail("unroutable");
                        let error = format!("no [[route]] for phone id {:?}", d.phone_id);
                        outcomes.push((d.id.clone(), retry_or_hold(&d, error, f.retry_max_ms, hold_after_ms, now)));
                        continue;
                    };
                    match envelope_for(&d, route, &self.signer) {
                        Ok((env, fresh)) => {
                            if fresh {
                                to_store.push((d.id.clone(), env.clone(), route.key.clone()));
                            }
                            to_send.push((d, route.clone(), env));
                        }
                        Err(e) => {
                            self.metrics.fail("seal");
                            outcomes.push((d.id.clone(), retry_or_hold(&d, e, f.retry_max_ms, hold_after_ms, now)));
                        }
                    }
                }
                // Durable before the first byte leaves: a crash after this point
                // resends the same envelope.
                spool.store_envelopes(&to_store)?;
                for (d, route, env) in to_send {
                    inflight.insert(d.id.clone());
                    spooled_at.insert(d.id.clone(), (d.spooled_ms, d.attempts));
                    let client = self.clients[&route.proxy].clone();
                    let timeout = f.timeout();
                    let body = delivery_body(&route, &d.id, &self.signer, &env);
                    let tx = tx.clone();
                    self.metrics.attempts.inc();
                    runtime.spawn(async move {
                        let r = attempt(&client, &route, &provider, body, &env, timeout).await;
                        let _ = tx.send((d.id, r));
                    });
                }
            }
            // Wait for results: briefly if there is more to claim, else until the
            // next message is due (new ones from the hook are seen within 200 ms).
            let wait = if claimed == room && room > 0 {
                Duration::ZERO
            } else if !inflight.is_empty() {
                Duration::from_millis(200)
            } else {
                let next = spool.next_due()?.map(|t| (t - spool::now_ms()).clamp(0, 200) as u64).unwrap_or(200);
                Duration::from_millis(next)
            };
            let mut results = Vec::new();
            if let Ok(r) = rx.recv_timeout(wait) {
                results.push(r);
                while let Ok(r) = rx.try_recv() {
                    results.push(r);
                }
            }
            let now = spool::now_ms();
            for (id, r) in results {
                inflight.remove(&id);
                let (spooled_ms, attempts) = spooled_at.remove(&id).unwrap_or((now, 0));
                match r {
                    Ok(receipt) => {
                        self.metrics.delivered.inc();
                        tracing::debug!("delivered {id}");
                        outcomes.push((id, Outcome::Delivered { receipt }));
                    }
                    Err(Failure { reason, message }) => {
                        self.metrics.fail(reason);
                        tracing::warn!("message {id}, attempt {}: {message}", attempts + 1);
                        let d = Due { id: id.clone(), phone_id: String::new(), body: vec![], spooled_ms, attempts, envelope: None };
                        let o = retry_or_hold(&d, message, backoff(f.retry_initial_ms, f.retry_max_ms, attempts), hold_after_ms, now);
                        outcomes.push((id, o));
                    }
                }
            }
            for (id, o) in &outcomes {
                if let Outcome::Hold { error } = o {
                    self.metrics.held.inc();
                    tracing::error!("message {id} is held after {} hours undelivered: {error}", f.hold_after_hours);
                }
            }
            spool.finish(&outcomes)?;
            if last_counts.elapsed() >= Duration::from_secs(1) {
                last_counts = Instant::now();
                self.metrics.set_counts(&spool.counts()?);
                if let Err(e) = spool.checkpoint() {
                    tracing::warn!("checkpointing the spool: {e}");
                }
            }
        }
        self.metrics.set_counts(&spool.counts()?);
        tracing::info!("forwarder stopped");
        Ok(())
    }
}

fn retry_or_hold(d: &Due, error: String, delay_ms: u64, hold_after_ms: i64, now: i64) -> Outcome {
    if now.saturating_sub(d.spooled_ms) >= hold_after_ms {
        Outcome::Hold { error }
    } else {
        Outcome::Retry { error, next_ms: now + delay_ms as i64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        for attempts in 0..50 {
            let d = backoff(1000, 60_000, attempts);
            let base = (1000u64 << attempts.min(40)).min(60_000) as f64;
            assert!((d as f64) >= base * 0.75 - 1.0 && (d as f64) <= base * 1.25 + 1.0, "{attempts}: {d}");
        }
        let spread: HashSet<u64> = (0..20).map(|_| backoff(1000, 60_000, 3)).collect();
        assert!(spread.len() > 1, "jitter spreads retries");
    }

    /// An inbox that answers every delivery with a receipt signed by `signer`.
    async fn inbox(signer: SigningKey, to: String, status: u16) -> String {
        use axum::routing::post;
        let app = axum::Router::new().route(
            "/v1/sms",
            post(move |body: axum::body::Bytes| {
                let (signer, to) = (signer.clone(), to.clone());
                async move {
                    let d: Delivery = serde_json::from_slice(&body).unwrap();
                    let env = b64u::decode(&d.envelope).unwrap();
                    let from = b64u::encode(signer.verifying_key().as_bytes());
                    let r = Receipt::issue(&signer, &from, ReceiptTo::Key(to), &env, time::OffsetDateTime::now_utc()).unwrap();
                    (axum::http::StatusCode::from_u16(status).unwrap(), r.canonical(true))
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/sms", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        url
    }

    #[tokio::test]
    async fn only_the_renters_receipt_for_these_bytes_counts() {
        let provider = SigningKey::from_bytes(&[1; 32]);
        let renter = SigningKey::from_bytes(&[2; 32]);
        let stranger = SigningKey::from_bytes(&[3; 32]);
        let renter_box = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([4; 32]));
        let me = b64u::encode(provider.verifying_key().as_bytes());
        let route = |url: String| Route {
            name: None,
            phone_ids: vec!["*".into()],
            renter_box,
            renter_sign: renter.verifying_key(),
            inbox_url: url,
            envelope: 2,
            proxy: None,
            key: String::new(),
        };
        let sender = Sender::new(None, Duration::from_secs(2), 1).unwrap();
        let env = seal_v2(&provider, &renter_box, [9; 16], 1, b"{}").unwrap();
        let body = || delivery_body(&route(String::new()), &hex::encode([9u8; 16]), &provider, &env);
        let t = Duration::from_secs(2);
        let good = route(inbox(renter.clone(), me.clone(), 200).await);
        assert!(attempt(&sender, &good, &provider.verifying_key(), body(), &env, t).await.is_ok());
        let forged = route(inbox(stranger, me.clone(), 200).await);
        let e = attempt(&sender, &forged, &provider.verifying_key(), body(), &env, t).await.unwrap_err();
        assert_eq!(e.reason, "receipt", "{}", e.message);
        let misaddressed = route(inbox(renter.clone(), "someone-else".into(), 200).await);
        let e = attempt(&sender, &misaddressed, &provider.verifying_key(), body(), &env, t).await.unwrap_err();
        assert_eq!(e.reason, "receipt", "{}", e.message);
        let refused = route(inbox(renter.clone(), me.clone(), 503).await);
        let e = attempt(&sender, &refused, &provider.verifying_key(), body(), &env, t).await.unwrap_err();
        assert_eq!(e.reason, "http", "{}", e.message);
        // A receipt for other bytes: the same message sealed again is another envelope.
        let other = seal_v2(&provider, &renter_box, [9; 16], 1, b"{}").unwrap();
        let e = attempt(&sender, &good, &provider.verifying_key(), body(), &other, t).await.unwrap_err();
        assert_eq!(e.reason, "receipt", "{}", e.message);
    }

    #[test]
    fn old_messages_are_held_not_dropped() {
        let d = Due { id: "x".into(), phone_id: String::new(), body: vec![], spooled_ms: 0, attempts: 9, envelope: None };
        assert!(matches!(retry_or_hold(&d, "e".into(), 5, 100, 50), Outcome::Retry { next_ms: 55, .. }));
        assert!(matches!(retry_or_hold(&d, "e".into(), 5, 100, 100), Outcome::Hold { .. }));
    }
}
