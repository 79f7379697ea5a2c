//! The payer's half of the HTTP side channel (docs/randpay.md §2), for both
//! modules: pay a call's first interval before its INVITE leaves, then ask the
//! payee for each next challenge on a schedule and pay it, until the call ends
//! or the payee forgets it. Asterisk payers always work this way; Kamailio
//! payers do when `randpay_payee_url` is set (it saves the 402 round trip).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::chap::ChallengeHeader;
use super::session::Payer;
use super::side_channel::{self, Poll, SideChannel, SideError, poll_period};

/// How the first ticket reaches the payee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandOver {
    /// POST it on the side channel before the INVITE leaves (Asterisk: a header
    /// added in the dialplan may not survive to the INVITE).
    Post,
    /// The host puts it in the INVITE as `Randpay-Ticket` (Kamailio): one HTTP
    /// request less per call.
    InInvite,
}

/// Why a payer's first payment failed.
#[derive(Debug, thiserror::Error)]
pub enum PayFailure {
    #[error("no payee URL: set the payee's side channel (payee_url / randpay_payee_url)")]
    NoUrl,
    #[error(transparent)]
    Side(#[from] SideError),
    #[error("not paying: {0}")]
    Pay(String),
}

/// A call paid over a side channel.
struct PaidCall {
    number: String,
    url: String,
    /// The host's own name for the call (Asterisk's uniqueid), for listings.
    label: String,
    next_poll: Instant,
    poll_every: Duration,
    polling: bool,
    tickets: u32,
}

/// A call as the payer's listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaidCallView {
    pub call_id: String,
    pub label: String,
    pub number: String,
    pub url: String,
    pub tickets: u32,
}

/// The side-channel payer: the core [`Payer`], one client per payee URL, and
/// the calls it keeps paying.
pub struct SidePayer {
    payer: Arc<Payer>,
    timeout: Duration,
    sides: Mutex<HashMap<String, SideChannel>>,
    calls: Mutex<HashMap<String, PaidCall>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SidePayer {
    /// `timeout`: the deadline of one side-channel request.
    pub fn new(payer: Arc<Payer>, timeout: Duration) -> SidePayer {
        SidePayer { payer, timeout, sides: Mutex::new(HashMap::new()), calls: Mutex::new(HashMap::new()) }
    }

    pub fn payer(&self) -> &Arc<Payer> {
        &self.payer
    }

    fn side(&self, url: &str) -> SideChannel {
        lock(&self.sides).entry(url.to_owned()).or_insert_with(|| SideChannel::new(url, self.timeout)).clone()
    }

    /// Pay the first interval of `call_id` (to `number`) at the payee's side
    /// channel `url`, and keep paying it. The `Randpay-Ticket` value, or `None`
    /// when the payee asked for nothing.
    pub async fn pay_first(&self, call_id: &str, number: &str, url: &str, label: &str, hand_over: HandOver) -> Result<Option<String>, PayFailure> {
        let side = self.side(url);
        let mut call = PaidCall {
            number: number.to_owned(),
            url: url.to_owned(),
            label: label.to_owned(),
            next_poll: Instant::now() + Duration::from_secs(1),
            poll_every: Duration::from_secs(1),
            polling: false,
            tickets: 0,
        };
        let ticket = match side.challenge(call_id, Some(number)).await? {
            None => None,
            Some(challenge) => {
                if let Ok(h) = ChallengeHeader::parse(&challenge) {
                    call.poll_every = poll_period(h.interval_secs, h.grace_secs);
                }
                let ticket = self.payer.pay(call_id, number, &challenge).await.map_err(|e| PayFailure::Pay(e.to_string()))?;
                if hand_over == HandOver::Post {
                    side.ticket(call_id, &ticket).await?;
                }
                call.tickets = 1;
                call.next_poll = Instant::now() + call.poll_every;
                Some(ticket)
            }
        };
        lock(&self.calls).entry(call_id.to_owned()).or_insert(call);
        Ok(ticket)
    }

    /// Is `call_id` being paid here?
    pub fn knows(&self, call_id: &str) -> bool {
        lock(&self.calls).contains_key(call_id)
    }

    /// Tickets sent for `call_id`.
    pub fn tickets(&self, call_id: &str) -> Option<u32> {
        lock(&self.calls).get(call_id).map(|c| c.tickets)
    }

    /// The call ended on this side: stop paying it.
    pub fn ended(&self, call_id: &str, reason: &str) {
        lock(&self.calls).remove(call_id);
        self.payer.ended(call_id, reason);
    }

    /// The calls being paid.
    pub fn calls(&self) -> Vec<PaidCallView> {
        let mut v: Vec<PaidCallView> = lock(&self.calls)
            .iter()
            .map(|(id, c)| PaidCallView { call_id: id.clone(), label: c.label.clone(), number: c.number.clone(), url: c.url.clone(), tickets: c.tickets })
            .collect();
        v.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        v
    }

    /// Ask the payees of the calls due (one task each, on the current tokio
    /// runtime) and pay what they ask. Call about once a second.
    pub fn tick(self: &Arc<Self>, now: Instant) {
        let due: Vec<(String, String, String)> = {
            let mut calls = lock(&self.calls);
            calls
                .iter_mut()
                .filter(|(_, c)| !c.polling && c.next_poll <= now)
                .map(|(k, c)| {
                    c.polling = true;
                    (k.clone(), c.number.clone(), c.url.clone())
                })
                .collect()
        };
        for (call_id, number, url) in due {
            let (me, side) = (self.clone(), self.side(&url));
            tokio::spawn(async move {
                let outcome = side_channel::pay_next(&me.payer, &side, &call_id, &number).await;
                me.polled(&call_id, outcome);
            });
        }
    }

    fn polled(&self, call_id: &str, outcome: Poll) {
        let mut calls = lock(&self.calls);
        match outcome {
            Poll::Forgotten(why) => {
                // The ledger row is ended by the host when its side of the call ends.
                tracing::warn!("randpay: {call_id}: the payee no longer meters this call ({why}); stop paying");
                calls.remove(call_id);
            }
            other => {
                if let Poll::Failed(why) = &other {
                    tracing::warn!("randpay: {call_id}: {why}");
                }
                if let Some(c) = calls.get_mut(call_id) {
                    c.polling = false;
                    c.next_poll = Instant::now() + c.poll_every;
                    if let Poll::Paid(period) = other {
                        c.tickets += 1;
                        c.poll_every = period;
                    }
                }
            }
        }
    }
}
