//! RANDPAY metering in Asterisk (docs/randpay.md; what Asterisk can and cannot
//! carry is docs/asterisk-randpay-notes.md).
//!
//! Stock Asterisk can neither put a challenge on a 402 nor send or answer INFO
//! from the dialplan, so here the whole exchange rides the HTTP side channel,
//! keyed by the SIP Call-ID:
//!
//! - **payee** (`RandpayRequire`, app.rs): serves the side channel; a call
//!   whose first interval was paid over it (or whose INVITE carries a valid
//!   `Randpay-Ticket`) proceeds, any other gets 402. Once a second, [`Metering`]
//!   notices the answer, issues the next challenge for the payer to fetch, and
//!   hangs up a call whose ticket is late (cause 29; a bridged call ends on
//!   both legs);
//! - **payer** (`RANDPAY(ticket,…)`, function.rs, in Dial's `b()` pre-dial
//!   handler): fetches and pays the first challenge before the INVITE leaves,
//!   then polls the payee for the next one while the channel lives.
//!
//! Everything that touches the node, the ledger or the network runs here, on
//! the module thread's runtime (engine.rs); Asterisk threads reach it with
//! [`crate::engine::Engine::randpay`] jobs and wait with a deadline. A
//! datastore on each metered channel (datastore.rs) tells when it ends.

pub mod app;
pub mod cli;
pub mod datastore;
pub mod function;
pub mod host;
pub mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ness_core::nvs::{NodeConfig, NvsClient};
use ness_core::randpay::session::{InviteDecision, PayeeAction};
use ness_core::randpay::side_channel;
use ness_core::randpay::side_payer::{HandOver, SidePayer};
use ness_core::randpay::{Ledger, Payee, Payer, RandpayRole, Tariff};
pub use ness_core::randpay::side_payer::PayFailure;

use crate::ffi::AST_CAUSE_FACILITY_REJECTED;
use crate::log::anotice;
use settings::RandpayConf;

/// The role this PBX plays, with the core's state machine for it.
pub enum Role {
    Payee(Arc<Payee>),
    /// The core's side-channel payer (it keeps the calls it pays).
    Payer(Arc<SidePayer>),
}

/// One payee call being metered, by its key (the SIP Call-ID).
struct Metered {
    uniqueid: String,
    /// The answer was seen.
    answered: bool,
}

/// A metered call as `randpay show calls` prints it.
pub struct CallRow {
    pub key: String,
    pub uniqueid: String,
    pub number: String,
    /// Payee: the tariff's prefix; payer: the payee's URL.
    pub detail: String,
    /// Payee: intervals paid; payer: tickets sent.
    pub paid: u32,
    pub answered_secs: Option<u64>,
}

/// The RANDPAY state of the running module. Created, used and dropped only on
/// the module thread (it owns tokio objects).
pub struct Metering {
    pub role: Role,
    pub conf: RandpayConf,
    calls: Mutex<HashMap<String, Metered>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metering {
    /// Open the ledger, start the role's tasks. On the module thread, inside the runtime.
    pub fn start(node: &NodeConfig, conf: RandpayConf) -> Result<Arc<Metering>, String> {
        let client = NvsClient::new(&node.clone().with_wallet(conf.core.wallet.clone())).map_err(|e| format!("randpay: {e}"))?;
        let ledger = Ledger::open(&conf.core.ledger).map_err(|e| format!("randpay ledger {}: {e}", conf.core.ledger.display()))?;
        match ledger.close_interrupted() {
            Ok(0) => {}
            Ok(n) => anotice!("randpay: {n} call(s) in progress when Asterisk stopped are closed in the ledger as 'restart'"),
            Err(e) => return Err(format!("randpay ledger: {e}")),
        }
        let role = match conf.core.role {
            RandpayRole::Payee => Role::Payee(Arc::new(Payee::new(client, ledger, conf.core.tariff_table()).with_tariff_hook(crate::hooks::tariff_hook()))),
            RandpayRole::Payer => Role::Payer(Arc::new(SidePayer::new(Arc::new(Payer::new(client, ledger, conf.core.policy.clone())), conf.core.side_timeout))),
            RandpayRole::Off => return Err("randpay: role is off".into()),
        };
        if let (Role::Payee(payee), Some((addr, peers))) = (&role, &conf.side_channel) {
            let l = std::net::TcpListener::bind(addr).map_err(|e| format!("randpay side_channel {addr}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            let l = tokio::net::TcpListener::from_std(l).map_err(|e| e.to_string())?;
            // Never told to stop: the runtime's shutdown at unload ends it.
            let (keep, shutdown) = tokio::sync::watch::channel(false);
            let (payee, peers2) = (payee.clone(), peers.clone());
            tokio::spawn(async move {
                side_channel::serve(l, payee, peers2, shutdown).await;
                drop(keep);
            });
            anotice!("randpay: HTTP side channel on {addr}{}", if peers.is_empty() { " (open to anyone who reaches it: set side_peers)".to_owned() } else { format!(", for {peers:?}") });
        }
        let m = Arc::new(Metering { role, conf, calls: Mutex::new(HashMap::new()) });
        tokio::spawn(schedule(m.clone()));
        anotice!(
            "randpay: {} ready (ledger {}, wallet {})",
            if matches!(m.role, Role::Payee(_)) { "payee" } else { "payer" },
            m.conf.core.ledger.display(),
            m.conf.core.wallet.as_deref().unwrap_or("the node's default")
        );
        Ok(m)
    }

    /// Payee: an INVITE reached `RandpayRequire`.
    pub async fn invite(&self, key: &str, uniqueid: &str, number: &str, caller: &str, tariff: Option<&str>, ticket: Option<&str>) -> InviteDecision {
        let Role::Payee(payee) = &self.role else {
            return InviteDecision::Refuse(500, "this PBX is not a RANDPAY payee ([randpay] role)".into());
        };
        let tariff = match tariff.map(Tariff::parse_line).transpose() {
            Ok(t) => t,
            Err(e) => return InviteDecision::Refuse(500, format!("RandpayRequire: {e}")),
        };
        let decision = payee.invite_priced(key, number, caller, tariff, ticket).await;
        if decision == InviteDecision::Proceed {
            lock(&self.calls).entry(key.to_owned()).or_insert_with(|| Metered { uniqueid: uniqueid.to_owned(), answered: false });
        }
        decision
    }

    /// Payer: pay the first interval of `key` before its INVITE leaves; the
    /// `Randpay-Ticket` value (empty when the payee wanted nothing).
    pub async fn pay_first(&self, key: &str, uniqueid: &str, number: &str, url: Option<&str>) -> Result<String, PayFailure> {
        let Role::Payer(payer) = &self.role else {
            return Err(PayFailure::Pay("this PBX is not a RANDPAY payer ([randpay] role)".into()));
        };
        let url = url.map(str::to_owned).or_else(|| self.conf.core.payee_url.clone()).ok_or(PayFailure::NoUrl)?;
        Ok(payer.pay_first(key, number, &url, uniqueid, HandOver::Post).await?.unwrap_or_default())
    }

    /// The channel of `key` is gone (its datastore was destroyed).
    pub fn ended(&self, key: &str, reason: &str) {
        lock(&self.calls).remove(key);
        match &self.role {
            Role::Payee(p) => p.ended(key, reason),
            Role::Payer(p) => p.ended(key, reason),
        }
    }

    /// The calls being metered now.
    pub fn rows(&self) -> Vec<CallRow> {
        let now = Instant::now();
        let calls = lock(&self.calls);
        let mut rows: Vec<CallRow> = match &self.role {
            Role::Payee(p) => p
                .calls(now)
                .into_iter()
                .map(|v| CallRow {
                    uniqueid: calls.get(&v.call_id).map(|c| c.uniqueid.clone()).unwrap_or_else(|| "(side channel only)".into()),
                    key: v.call_id,
                    number: v.number,
                    detail: v.tariff,
                    paid: v.paid_intervals,
                    answered_secs: v.answered_secs,
                })
                .collect(),
            Role::Payer(p) => p
                .calls()
                .into_iter()
                .map(|c| CallRow { key: c.call_id, uniqueid: c.label, number: c.number, detail: c.url, paid: c.tickets, answered_secs: None })
                .collect(),
        };
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        rows
    }

    /// Payee: intervals paid for `key`; payer: tickets sent.
    pub fn paid(&self, key: &str) -> Option<u32> {
        match &self.role {
            Role::Payee(p) => p.calls(Instant::now()).into_iter().find(|v| v.call_id == key).map(|v| v.paid_intervals),
            Role::Payer(p) => p.tickets(key),
        }
    }
}

/// Once a second: the payee notices answers, issues challenges and ends late
/// calls; the payer asks for and pays the challenges due.
async fn schedule(m: Arc<Metering>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match &m.role {
            Role::Payee(p) => payee_tick(&m, p).await,
            Role::Payer(p) => p.tick(Instant::now()),
        }
    }
}

async fn payee_tick(m: &Arc<Metering>, payee: &Arc<Payee>) {
    let ringing: Vec<(String, String)> =
        lock(&m.calls).iter().filter(|(_, c)| !c.answered).map(|(k, c)| (k.clone(), c.uniqueid.clone())).collect();
    for (key, uid) in ringing {
        match host::answer_of(&uid) {
            host::Answer::Ringing => {}
            host::Answer::Gone => m.ended(&key, "gone"),
            host::Answer::At(at) => {
                if payee.answered(&key, at) {
                    if let Some(c) = lock(&m.calls).get_mut(&key) {
                        c.answered = true;
                    }
                } else {
                    anotice!("randpay: {key} was answered but its first interval is not paid: hanging up");
                    m.ended(&key, "unpaid");
                    host::hang_up(&uid, AST_CAUSE_FACILITY_REJECTED);
                }
            }
        }
    }
    for action in payee.tick(Instant::now()).await {
        // A challenge due waits for the payer's GET on the side channel.
        if let PayeeAction::End { call_id, seq } = action {
            let uid = lock(&m.calls).get(&call_id).map(|c| c.uniqueid.clone());
            m.ended(&call_id, "unpaid");
            anotice!("randpay: {call_id}: no ticket for interval {seq}: hanging up");
            if let Some(uid) = uid {
                host::hang_up(&uid, AST_CAUSE_FACILITY_REJECTED);
            }
        }
    }
}
