//! The two roles of docs/randpay.md as host-independent state machines: what a
//! payee PBX does with an INVITE, a timer tick and a ticket, and what a payer PBX
//! answers to a challenge. The Kamailio and Asterisk modules carry the header
//! values in and out and act on the decisions (reply 402, route, send INFO, end
//! the call); node calls, the ledger and the schedule are here.
//!
//! Times are passed in (`Instant`), so hosts use their clock and tests their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::chap::{ChallengeHeader, TicketHeader};
use super::ledger::{CallSummary, Ledger, LedgerError, Role};
use super::meter::{MeterState, PayeeMeter, PayerPolicy, PolicyError, TicketVerdict};
use super::node::{self, AcceptError, MintError};
use super::tariff::{Tariff, TariffTable};
use crate::hooks::{CallCtx, HookError, TariffDecision};
use crate::nvs::NvsClient;

/// What to do with an INVITE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InviteDecision {
    /// Reply `402 Payment Required` with this `Randpay-Challenge` value.
    Challenge(String),
    /// Interval 0 is paid: route the call.
    Proceed,
    /// Reply with this code and reason.
    Refuse(u16, String),
}

/// What the payee's timer asks the host to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayeeAction {
    /// Send an in-dialog INFO (or offer on the side channel) with this `Randpay-Challenge` value.
    SendChallenge { call_id: String, header: String },
    /// End the call on both legs: the ticket for `seq` is late.
    End { call_id: String, seq: u32 },
}

/// What the payer of a call has to pay now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    UnknownCall,
    Nothing,
    /// This `Randpay-Challenge` value.
    Challenge(String),
}

/// One metered call, as `randpay.calls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallView {
    pub call_id: String,
    pub number: String,
    pub tariff: String,
    pub paid_intervals: u32,
    pub answered_secs: Option<u64>,
}

struct PayeeCall {
    number: String,
    created: Instant,
    meter: PayeeMeter,
    answered: Option<Instant>,
    /// The challenge header currently outstanding (repeated as is to a retransmission).
    pending: Option<(u32, String)>,
    /// Started by the payer on the HTTP side channel (before its INVITE): its
    /// payer fetches each challenge there, so the host sends none in SIP.
    side_channel: bool,
}

/// How long a call may stay unanswered before the payee forgets it (a 402 the
/// payer never answered, a call that rang out without a final reply reaching us).
pub const SETUP_LIMIT: Duration = Duration::from_secs(180);

/// The operator's pricing on top of the tariff table: the `tariff(ctx)` Lua
/// hook (docs/hooks.md), run by each host on its own Lua state. The payee calls
/// it on a blocking thread, so a script that reads NVS never holds up the meter.
pub trait TariffHook: Send + Sync {
    fn tariff(&self, ctx: &CallCtx) -> Result<Option<TariffDecision>, HookError>;

    /// False while the host has no script loaded (no thread hop needed then).
    fn active(&self) -> bool {
        true
    }
}

/// The payee: tariffs, its wallet's node, the ledger and the calls in progress.
pub struct Payee {
    node: NvsClient,
    ledger: Mutex<Ledger>,
    tariffs: TariffTable,
    hook: Option<Arc<dyn TariffHook>>,
    calls: Mutex<HashMap<String, PayeeCall>>,
}

/// A tariff as the `tariff` hook sees it (`ctx.default`): the price without
/// trailing zeros, as an operator writes it.
fn decision_of(t: &Tariff) -> TariffDecision {
    TariffDecision { price: t.price_per_minute.plain(), risk: t.risk, interval_secs: t.interval_secs, grace_secs: t.grace_secs }
}

/// Same E.164 number, with or without its `+`.
fn same_number(a: &str, b: &str) -> bool {
    a.trim().trim_start_matches('+') == b.trim().trim_start_matches('+')
}

impl Payee {
    pub fn new(node: NvsClient, ledger: Ledger, tariffs: TariffTable) -> Payee {
        Payee { node, ledger: Mutex::new(ledger), tariffs, hook: None, calls: Mutex::new(HashMap::new()) }
    }

    /// Price calls through the operator's `tariff` hook as well.
    pub fn with_tariff_hook(mut self, hook: Arc<dyn TariffHook>) -> Payee {
        self.hook = Some(hook);
        self
    }

    /// What a call to `number` from `caller` costs: the host's own tariff `line`
    /// if it gave one, else the table's; then the `tariff` hook's answer, if a
    /// hook is set. A hook that fails, or answers with no valid tariff, is logged
    /// and the default stands. None: the destination has no tariff.
    pub async fn price(&self, number: &str, caller: &str, line: Option<Tariff>) -> Option<Tariff> {
        let default = line.or_else(|| self.tariffs.for_number(number).cloned());
        let Some(hook) = self.hook.clone().filter(|h| h.active()) else { return default };
        let ctx = CallCtx { number: number.to_owned(), caller: caller.to_owned(), default: default.as_ref().map(decision_of) };
        let answer = tokio::task::spawn_blocking(move || hook.tariff(&ctx)).await;
        let fallback = || match &default {
            Some(t) => format!("pricing {number} by tariff {}", t.line()),
            None => format!("{number} has no tariff"),
        };
        match answer {
            Ok(Ok(None)) => default,
            Ok(Ok(Some(d))) => match Tariff::new(default.as_ref().map_or("+", |t| t.prefix.as_str()), &d.price, d.risk, d.interval_secs, d.grace_secs) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!("randpay: the tariff hook's answer for {number} is not a usable tariff ({e}); {}", fallback());
                    default
                }
            },
            Ok(Err(e)) => {
                tracing::warn!("randpay: {e}; {}", fallback());
                default
            }
            Err(e) => {
                tracing::warn!("randpay: the tariff hook stopped ({e}); {}", fallback());
                default
            }
        }
    }

    /// The tariff a call is metered by.
    pub fn tariff_of(&self, call_id: &str) -> Option<Tariff> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).get(call_id).map(|c| c.meter.tariff.clone())
    }

    /// Calls in the ledger: one, or the most recent `limit`.
    pub fn ledger_calls(&self, call_id: Option<&str>, limit: u32) -> Result<Vec<CallSummary>, LedgerError> {
        self.ledger(|l| ledger_calls(l, call_id, limit))
    }

    /// Is this call being metered (or set up)?
    pub fn knows(&self, call_id: &str) -> bool {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).contains_key(call_id)
    }

    fn ledger<R>(&self, f: impl FnOnce(&Ledger) -> Result<R, LedgerError>) -> Result<R, LedgerError> {
        f(&self.ledger.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Issue (or repeat) the challenge for `seq` of `call_id`.
    async fn challenge(&self, call_id: &str, seq: u32) -> Result<String, InviteDecision> {
        let tariff = {
            let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            let Some(call) = calls.get(call_id) else { return Err(InviteDecision::Refuse(481, "Call Does Not Exist".into())) };
            if let Some((s, h)) = &call.pending
                && *s == seq
            {
                return Ok(h.clone());
            }
            call.meter.tariff.clone()
        };
        let timeout = Duration::from_secs(u64::from(tariff.interval_secs + tariff.grace_secs));
        let chap = node::mkchap(&self.node, tariff.ticket_amount(), tariff.risk, timeout).await.map_err(|e| {
            tracing::warn!("randpay: cannot make a challenge: {e}");
            InviteDecision::Refuse(503, "Payment Node Unavailable".into())
        })?;
        self.ledger(|l| l.challenge(call_id, seq, &chap)).map_err(|e| {
            tracing::error!("randpay: {e}");
            InviteDecision::Refuse(500, "Ledger Unavailable".into())
        })?;
        let header = ChallengeHeader {
            seq,
            chap,
            interval_secs: tariff.interval_secs,
            grace_secs: tariff.grace_secs,
            price_per_minute: tariff.price_per_minute,
        }
        .to_string();
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(call) = calls.get_mut(call_id) {
            call.meter.challenge_issued(seq);
            call.pending = Some((seq, header.clone()));
        }
        Ok(header)
    }

    /// An INVITE for `number`, with the `Randpay-Ticket` value if it carries one,
    /// priced by the tariff table (and the hook).
    pub async fn invite(&self, call_id: &str, number: &str, ticket: Option<&str>) -> InviteDecision {
        self.invite_priced(call_id, number, "", None, ticket).await
    }

    /// As [`Payee::invite`], from `caller`, with the host's own tariff line
    /// instead of the table's. The first INVITE (or side-channel request) of a
    /// call fixes its tariff; later ones for the same number keep it, whatever
    /// the hook would say now.
    pub async fn invite_priced(&self, call_id: &str, number: &str, caller: &str, line: Option<Tariff>, ticket: Option<&str>) -> InviteDecision {
        let known = self.calls.lock().unwrap_or_else(|p| p.into_inner()).get(call_id).map(|c| (c.number.clone(), c.meter.tariff.clone()));
        let tariff = match known {
            Some((priced_number, _)) if same_number(&priced_number, number) => None,
            _ => match self.price(number, caller, line).await {
                Some(t) => Some(t),
                None => return InviteDecision::Refuse(403, "No Tariff For This Destination".into()),
            },
        };
        {
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = calls.get(call_id) {
                // A call started on the side channel was priced by the number its payer
                // gave there: another number in the INVITE must cost the same.
                if let Some(tariff) = tariff.filter(|t| *t != c.meter.tariff) {
                    tracing::warn!(
                        "randpay: {call_id}: the INVITE's number {number} is priced by tariff {} but the call was started (and priced) as {} by tariff {}",
                        tariff.line(),
                        c.number,
                        c.meter.tariff.line()
                    );
                    return InviteDecision::Refuse(403, "Number Does Not Match The Priced Call".into());
                }
            } else {
                let Some(tariff) = tariff else { return InviteDecision::Refuse(481, "Call Does Not Exist".into()) };
                match self.ledger(|l| l.ended(call_id)) {
                    Ok(false) => {}
                    // A replay of an old call's INVITE: its rows stay as they are.
                    Ok(true) => return InviteDecision::Refuse(481, "Call Already Ended".into()),
                    Err(e) => {
                        tracing::error!("randpay: {e}");
                        return InviteDecision::Refuse(500, "Ledger Unavailable".into());
                    }
                }
                if let Err(e) = self.ledger(|l| l.begin_call(call_id, Role::Payee, number, &tariff)) {
                    tracing::error!("randpay: {e}");
                    return InviteDecision::Refuse(500, "Ledger Unavailable".into());
                }
                calls.insert(
                    call_id.to_owned(),
                    PayeeCall {
                        number: number.to_owned(),
                        created: Instant::now(),
                        meter: PayeeMeter::new(tariff),
                        answered: None,
                        pending: None,
                        side_channel: false,
                    },
                );
            }
            if calls.get(call_id).is_some_and(|c| c.meter.may_connect()) {
                // A retransmission of the paid INVITE.
                return InviteDecision::Proceed;
            }
        }
        if let Some(text) = ticket {
            match self.ticket(call_id, text).await {
                Ok(TicketVerdict::Paid | TicketVerdict::Duplicate) => return InviteDecision::Proceed,
                Ok(v) => tracing::info!("randpay: {call_id}: ticket not counted ({v:?}); challenging again"),
                Err(TicketError::Node(e)) => {
                    tracing::warn!("randpay: {call_id}: {e}");
                    return InviteDecision::Refuse(503, "Payment Node Unavailable".into());
                }
                Err(e) => tracing::info!("randpay: {call_id}: {e}; challenging again"),
            }
        }
        match self.challenge(call_id, 0).await {
            Ok(h) => InviteDecision::Challenge(h),
            Err(d) => d,
        }
    }

    /// A call's first challenge asked for on the side channel, before its INVITE.
    pub async fn invite_on_side_channel(&self, call_id: &str, number: &str) -> InviteDecision {
        let known = self.knows(call_id);
        let decision = self.invite(call_id, number, None).await;
        if !known && let Some(c) = self.calls.lock().unwrap_or_else(|p| p.into_inner()).get_mut(call_id) {
            c.side_channel = true;
        }
        decision
    }

    /// Was this call started on the side channel? (Then its challenges wait
    /// there for the payer's GET and are not sent in SIP.)
    pub fn on_side_channel(&self, call_id: &str) -> bool {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).get(call_id).is_some_and(|c| c.side_channel)
    }

    /// A `Randpay-Ticket` value (from an INVITE, an INFO's 200 OK or the side channel).
    pub async fn ticket(&self, call_id: &str, text: &str) -> Result<TicketVerdict, TicketError> {
        let h = TicketHeader::parse(text).map_err(|e| TicketError::Malformed(e.to_string()))?;
        {
            let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            let call = calls.get(call_id).ok_or(TicketError::NoCall)?;
            if h.seq < call.meter.paid_intervals() {
                return Ok(TicketVerdict::Duplicate);
            }
        }
        let chap = self.ledger(|l| l.challenge_for(call_id, h.seq)).map_err(TicketError::Ledger)?.ok_or(TicketError::NoChallenge(h.seq))?;
        self.ledger(|l| l.ticket(call_id, h.seq, &chap, &h.ticket)).map_err(TicketError::Ledger)?;
        match node::accept(&self.node, &h.ticket).await {
            Ok(acc) => {
                let verdict = {
                    let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
                    let call = calls.get_mut(call_id).ok_or(TicketError::NoCall)?;
                    let v = call.meter.ticket(h.seq, &acc);
                    if v == TicketVerdict::Paid {
                        call.pending = None;
                    }
                    v
                };
                if verdict == TicketVerdict::Paid {
                    self.ledger(|l| l.outcome(call_id, h.seq, &acc)).map_err(TicketError::Ledger)?;
                }
                Ok(verdict)
            }
            Err(e) => {
                let _ = self.ledger(|l| l.refused(call_id, h.seq, &e.to_string()));
                if matches!(e, AcceptError::UnknownChallenge) {
                    // Forgotten by the node (a restart) or never ours: a fresh challenge.
                    let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(call) = calls.get_mut(call_id) {
                        call.meter.challenge_lost(h.seq);
                        call.pending = None;
                    }
                }
                Err(match e {
                    AcceptError::Node(n) => TicketError::Node(n.to_string()),
                    other => TicketError::Refused(other.to_string()),
                })
            }
        }
    }

    /// The call was answered at `at`: metering starts. False if the call is not
    /// (or no longer) metered here, or its first interval is unpaid: the host
    /// must then end it.
    pub fn answered(&self, call_id: &str, at: Instant) -> bool {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        match calls.get_mut(call_id) {
            Some(call) if call.meter.may_connect() => {
                if call.answered.is_none() {
                    call.answered = Some(at);
                    let _ = self.ledger(|l| l.answered(call_id));
                }
                true
            }
            _ => false,
        }
    }

    /// The call ended (BYE, CANCEL, failure, or our own `End`).
    pub fn ended(&self, call_id: &str, reason: &str) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).remove(call_id);
        let _ = self.ledger(|l| l.end_call(call_id, reason));
    }

    /// Run the schedule at `now`: challenges due and calls to end. Calls never
    /// answered within [`SETUP_LIMIT`] are forgotten (ledger: `not answered`).
    pub async fn tick(&self, now: Instant) -> Vec<PayeeAction> {
        let mut due = Vec::new();
        let mut actions = Vec::new();
        let stale: Vec<String> = {
            let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            calls
                .iter()
                .filter(|(_, c)| c.answered.is_none() && now.saturating_duration_since(c.created) > SETUP_LIMIT)
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in stale {
            self.ended(&id, "not answered");
        }
        {
            let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            for (id, call) in calls.iter() {
                let Some(at) = call.answered else { continue };
                let since = now.saturating_duration_since(at);
                match call.meter.state(since) {
                    MeterState::Late { seq } => actions.push(PayeeAction::End { call_id: id.clone(), seq }),
                    _ => {
                        if let Some(seq) = call.meter.challenge_due(since) {
                            due.push((id.clone(), seq));
                        }
                    }
                }
            }
        }
        for (id, seq) in due {
            if let Ok(header) = self.challenge(&id, seq).await {
                actions.push(PayeeAction::SendChallenge { call_id: id, header });
            }
        }
        actions
    }

    /// Intervals paid for `call_id` so far.
    pub fn paid_intervals(&self, call_id: &str) -> Option<u32> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).get(call_id).map(|c| c.meter.paid_intervals())
    }

    /// For a host with its own call timer (Kamailio's dialog timeout), as a
    /// backstop should the metering stop: seconds from `now` to the time the
    /// metering would end the call if no ticket came, plus 30 s of slack.
    pub fn backstop_secs(&self, call_id: &str, now: Instant) -> Option<u32> {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let c = calls.get(call_id)?;
        Some(match c.answered {
            None => c.meter.tariff.backstop_secs(),
            Some(at) => {
                let left = c.meter.deadline(c.meter.paid_intervals()).saturating_sub(now.saturating_duration_since(at));
                u32::try_from(left.as_secs()).unwrap_or(u32::MAX).saturating_add(30)
            }
        })
    }

    /// The challenge waiting for the payer of `call_id` (the side channel's GET).
    pub fn pending(&self, call_id: &str) -> Pending {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        match calls.get(call_id) {
            None => Pending::UnknownCall,
            Some(c) => c.pending.as_ref().map_or(Pending::Nothing, |(_, h)| Pending::Challenge(h.clone())),
        }
    }

    pub fn calls(&self, now: Instant) -> Vec<CallView> {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<CallView> = calls
            .iter()
            .map(|(id, c)| CallView {
                call_id: id.clone(),
                number: c.number.clone(),
                tariff: c.meter.tariff.prefix.clone(),
                paid_intervals: c.meter.paid_intervals(),
                answered_secs: c.answered.map(|a| now.saturating_duration_since(a).as_secs()),
            })
            .collect();
        out.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        out
    }
}

/// Why a ticket did not count.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("malformed Randpay-Ticket: {0}")]
    Malformed(String),
    #[error("no metered call with this Call-ID")]
    NoCall,
    #[error("no challenge was issued for interval {0} of this call")]
    NoChallenge(u32),
    #[error("ticket refused: {0}")]
    Refused(String),
    #[error("the payee's node failed: {0}")]
    Node(String),
    #[error(transparent)]
    Ledger(LedgerError),
}

/// Why the payer did not pay.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    #[error("malformed Randpay-Challenge: {0}")]
    Malformed(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Mint(#[from] MintError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The payer: its wallet's node, its policy and its ledger.
pub struct Payer {
    node: NvsClient,
    ledger: Mutex<Ledger>,
    pub policy: PayerPolicy,
}

impl Payer {
    pub fn new(node: NvsClient, ledger: Ledger, policy: PayerPolicy) -> Payer {
        Payer { node, ledger: Mutex::new(ledger), policy }
    }

    /// A `Randpay-Challenge` value for `call_id` → the `Randpay-Ticket` value to answer
    /// with. A challenge seen before gets the same ticket.
    pub async fn pay(&self, call_id: &str, number: &str, text: &str) -> Result<String, PayError> {
        let h = ChallengeHeader::parse(text).map_err(|e| PayError::Malformed(e.to_string()))?;
        self.policy.check(&h)?;
        let known = {
            let l = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
            // Recorded at the price the challenge really implies, not the announced one.
            let implied = Tariff::implied_price(h.chap.amount, h.chap.risk, h.interval_secs);
            if let Ok(t) = Tariff::new("+", &implied.to_string(), h.chap.risk, h.interval_secs, h.grace_secs) {
                l.begin_call(call_id, Role::Payer, number, &t)?;
            }
            l.ticket_for(call_id, h.seq, &h.chap)?
        };
        let ticket = match known {
            Some(t) => t,
            None => {
                let lock = Duration::from_secs(u64::from(h.interval_secs + h.grace_secs));
                let t = node::mktx(&self.node, &h.chap, lock).await?;
                self.ledger.lock().unwrap_or_else(|p| p.into_inner()).ticket(call_id, h.seq, &h.chap, &t)?;
                t
            }
        };
        Ok(TicketHeader { seq: h.seq, ticket }.to_string())
    }

    pub fn ended(&self, call_id: &str, reason: &str) {
        let _ = self.ledger.lock().unwrap_or_else(|p| p.into_inner()).end_call(call_id, reason);
    }

    /// Calls in the ledger: one, or the most recent `limit`.
    pub fn ledger_calls(&self, call_id: Option<&str>, limit: u32) -> Result<Vec<CallSummary>, LedgerError> {
        ledger_calls(&self.ledger.lock().unwrap_or_else(|p| p.into_inner()), call_id, limit)
    }
}

fn ledger_calls(l: &Ledger, call_id: Option<&str>, limit: u32) -> Result<Vec<CallSummary>, LedgerError> {
    match call_id {
        Some(id) => Ok(vec![l.call(id)?]),
        None => l.recent_calls(limit),
    }
}
