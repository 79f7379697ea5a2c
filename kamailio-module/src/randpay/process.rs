//! The RANDPAY process: one Kamailio process, forked by the core like a timer
//! process, that owns the payee's or payer's state (ness-core's `Payee` or
//! `Payer`: the node client, the meters of calls in progress, the SQLite
//! ledger). It answers the other processes over ipc.rs, runs the payee's
//! schedule every second — an in-dialog INFO with the next challenge to the
//! caller leg, BYE on both legs when a ticket is late — and serves the HTTP side
//! channel when configured. A payer with `randpay_payee_url` pays the first
//! interval on the payee's side channel before the INVITE leaves and then polls
//! it for the next challenges (core `SidePayer`), every second.
//!
//! The core calls `slice()` in a loop. Each call drives a current-thread tokio
//! runtime (built here, after the fork) for a fraction of a second, so every
//! task, and every call into Kamailio's dialog and tm APIs, runs on this
//! process's only thread.

use std::collections::{HashMap, HashSet};
use std::ffi::{c_uint, c_void};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ness_core::nvs::NvsClient;
use ness_core::randpay::session::{InviteDecision, PayeeAction};
use ness_core::randpay::session::CallView;
use ness_core::randpay::side_channel;
use ness_core::randpay::side_payer::{HandOver, SidePayer};
use ness_core::randpay::{Ledger, Payee, Payer, RandpayRole, Tariff};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::dialog;
use super::ipc::{self, Reply, Request};
use super::{RANDPAY, SIDE_CHANNEL, script};
use crate::log::{fence, kerr, kinfo, knotice, kwarn};
use crate::worker::CONFIG;

enum Role {
    Payee(Arc<Payee>),
    /// The core payer, wrapped with what it pays over a side channel.
    Payer(Arc<SidePayer>),
}

/// An answered payee call's dialog.
struct Dialog {
    h_entry: u32,
    h_id: u32,
    /// Intervals paid when its dialog timeout was last set.
    backstop_paid: u32,
}

/// What the process knows besides the core's state.
struct State {
    role: Role,
    /// Answered payee calls: Call-ID → (h_entry, h_id).
    dialogs: Mutex<HashMap<String, Dialog>>,
    /// Payer: `randpay_payee_url`.
    payee_url: Option<String>,
    /// Payer: calls stopped with `randpay.stop` (the key `all`: every call).
    stopped: Mutex<HashSet<String>>,
}

impl State {
    fn is_stopped(&self, call_id: &str) -> bool {
        let s = lock(&self.stopped);
        s.contains(call_id) || s.contains("all")
    }
}

impl State {
    /// Drop what is kept about a call; its dialog ids if it had any.
    fn forget(&self, call_id: &str) -> Option<(u32, u32)> {
        lock(&self.dialogs).remove(call_id).map(|d| (d.h_entry, d.h_id))
    }
}

struct Meter {
    pid: u32,
    runtime: tokio::runtime::Runtime,
    state: Arc<State>,
    _shutdown: tokio::sync::watch::Sender<bool>,
}

static METER: Mutex<Option<Meter>> = Mutex::new(None);
/// Set once building failed, so the loop does not retry (and log) forever.
static BROKEN: Mutex<Option<u32>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Meter {
    fn build() -> Result<Meter, String> {
        let settings = lock(&RANDPAY).clone();
        let side = lock(&SIDE_CHANNEL).clone();
        let (node, _) = CONFIG.get().ok_or("the module is not configured")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot create the RANDPAY runtime: {e}"))?;
        let _guard = runtime.enter();
        let client = NvsClient::new(&node.clone().with_wallet(settings.wallet.clone())).map_err(|e| e.to_string())?;
        let ledger = Ledger::open(&settings.ledger).map_err(|e| e.to_string())?;
        match ledger.close_interrupted() {
            Ok(0) => {}
            Ok(n) => knotice!("randpay: {n} call(s) in progress when Kamailio stopped are closed in the ledger as 'restart'"),
            Err(e) => return Err(e.to_string()),
        }
        let role = match settings.role {
            RandpayRole::Payee => Role::Payee(Arc::new(Payee::new(client, ledger, settings.tariff_table()).with_tariff_hook(crate::hooks::tariff_hook()))),
            RandpayRole::Payer => {
                Role::Payer(Arc::new(SidePayer::new(Arc::new(Payer::new(client, ledger, settings.policy.clone())), settings.side_timeout)))
            }
            RandpayRole::Off => return Err("randpay_role is off".into()),
        };
        let state = Arc::new(State {
            role,
            dialogs: Mutex::new(HashMap::new()),
            payee_url: settings.payee_url.clone(),
            stopped: Mutex::new(HashSet::new()),
        });
        let listener = std::os::unix::net::UnixListener::bind_addr(&ipc::address().map_err(|e| e.to_string())?)
            .map_err(|e| format!("cannot open the RANDPAY socket: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let listener = UnixListener::from_std(listener).map_err(|e| e.to_string())?;
        tokio::spawn(serve_ipc(listener, state.clone()));
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        if let Role::Payer(payer) = &state.role {
            tokio::spawn(pay_schedule(payer.clone()));
        }
        if let Role::Payee(payee) = &state.role {
            tokio::spawn(schedule(state.clone()));
            if let Some((addr, peers)) = side {
                let l = std::net::TcpListener::bind(addr).map_err(|e| format!("randpay_side_channel {addr}: {e}"))?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                let l = tokio::net::TcpListener::from_std(l).map_err(|e| e.to_string())?;
                tokio::spawn(side_channel::serve(l, payee.clone(), peers, shutdown_rx));
                kinfo!("randpay: HTTP side channel on {addr}");
            }
        }
        drop(_guard);
        kinfo!(
            "randpay: {} process ready (ledger {}, wallet {})",
            match settings.role {
                RandpayRole::Payee => "payee",
                _ => "payer",
            },
            settings.ledger.display(),
            settings.wallet.as_deref().unwrap_or("the node's default")
        );
        Ok(Meter { pid: std::process::id(), runtime, state, _shutdown: shutdown })
    }
}

/// The core's loop calls this about every millisecond, in the RANDPAY process only.
pub unsafe extern "C" fn slice(_ticks: c_uint, _param: *mut c_void) {
    let ok = fence("randpay process", false, || {
        let pid = std::process::id();
        if *lock(&BROKEN) == Some(pid) {
            std::thread::sleep(Duration::from_secs(1));
            return true;
        }
        let mut guard = lock(&METER);
        if guard.as_ref().is_none_or(|m| m.pid != pid) {
            super::PROCESS_PID.store(pid, std::sync::atomic::Ordering::SeqCst);
            match Meter::build() {
                Ok(m) => *guard = Some(m),
                Err(e) => {
                    kerr!("randpay: {e}; RANDPAY calls are refused until Kamailio is restarted");
                    *lock(&BROKEN) = Some(pid);
                    return true;
                }
            }
        }
        let Some(m) = guard.as_ref() else { return true };
        m.runtime.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
        // Events our own dialog and tm callbacks raised in this process.
        let queued = std::mem::take(&mut *lock(&super::LOCAL_EVENTS));
        for req in queued {
            m.runtime.block_on(handle(&m.state, req));
        }
        // What the tariff hook logged on its helper thread.
        crate::log::flush_deferred();
        true
    });
    if !ok {
        // A bug, already logged: do not spin on it.
        std::thread::sleep(Duration::from_secs(1));
    }
}

async fn serve_ipc(listener: UnixListener, state: Arc<State>) {
    loop {
        let stream = super::ipc::accept_own_user(&listener, "randpay").await;
        tokio::spawn(connection(stream, state.clone()));
    }
}

async fn connection(stream: UnixStream, state: Arc<State>) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) if req.is_event() => {
                // No answer is awaited: report trouble here.
                if let Reply::Error { message } = handle(&state, req).await {
                    kwarn!("randpay: {message}");
                }
                continue;
            }
            Ok(req) => handle(&state, req).await,
            Err(e) => Reply::Error { message: format!("malformed request: {e}") },
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"reply\":\"error\",\"message\":\"?\"}".to_vec());
        out.push(b'\n');
        if w.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn handle(state: &Arc<State>, req: Request) -> Reply {
    let now = Instant::now();
    match (&state.role, req) {
        (Role::Payee(p), Request::Invite { call_id, number, caller, tariff, ticket }) => {
            let tariff = match tariff.as_deref().map(Tariff::parse_line).transpose() {
                Ok(t) => t,
                Err(e) => return Reply::Error { message: format!("randpay_require: {e}") },
            };
            match p.invite_priced(&call_id, &number, &caller, tariff, ticket.as_deref()).await {
                InviteDecision::Challenge(header) => Reply::Challenge { header },
                InviteDecision::Proceed => Reply::Proceed { backstop_secs: p.tariff_of(&call_id).map_or(3600, |t| t.backstop_secs()) },
                InviteDecision::Refuse(code, reason) => Reply::Refuse { code, reason },
            }
        }
        (Role::Payee(p), Request::Answered { call_id, h_entry, h_id }) => {
            if p.answered(&call_id, now) {
                lock(&state.dialogs).insert(call_id, Dialog { h_entry, h_id, backstop_paid: 1 });
            } else {
                knotice!("randpay: {call_id} was answered but its first interval is not paid: ending it");
                let _ = dialog::end(h_entry, h_id, "SIP;cause=402;text=\"RANDPAY: not paid\"");
            }
            Reply::Done
        }
        (Role::Payee(p), Request::Ended { call_id, reason }) => {
            p.ended(&call_id, &reason);
            state.forget(&call_id);
            Reply::Done
        }
        (Role::Payee(p), Request::Ticket { call_id, ticket }) => {
            // Answer at once: the worker that got the INFO's 200 OK must not wait for the node.
            let p = p.clone();
            tokio::spawn(async move {
                // (The schedule moves the dialog's backstop once the ticket counts.)
                match p.ticket(&call_id, &ticket).await {
                    Ok(ness_core::randpay::meter::TicketVerdict::Paid) => {}
                    Ok(v) => kinfo!("randpay: {call_id}: ticket not counted ({v:?})"),
                    Err(e) => knotice!("randpay: {call_id}: {e}"),
                }
            });
            Reply::Done
        }
        (Role::Payer(_), Request::Pay { call_id, .. } | Request::PayFirst { call_id, .. }) if state.is_stopped(&call_id) => {
            Reply::Error { message: "payments stopped with randpay.stop".into() }
        }
        (Role::Payer(p), Request::Stop { call_id }) => {
            knotice!("randpay: {call_id}: no more payments (randpay.stop)");
            if call_id != "all" {
                p.ended(&call_id, "stopped");
            } else {
                for c in p.calls() {
                    p.ended(&c.call_id, "stopped");
                }
            }
            lock(&state.stopped).insert(call_id);
            Reply::Done
        }
        (Role::Payer(p), Request::Pay { call_id, number, challenge }) => match p.payer().pay(&call_id, &number, &challenge).await {
            Ok(header) => Reply::Ticket { header },
            Err(e) => Reply::Error { message: e.to_string() },
        },
        (Role::Payer(p), Request::PayFirst { call_id, number }) => {
            let Some(url) = &state.payee_url else {
                return Reply::Error { message: "randpay_payee_url is not set".into() };
            };
            match p.pay_first(&call_id, &number, url, "", HandOver::InInvite).await {
                Ok(Some(header)) => Reply::Ticket { header },
                Ok(None) => Reply::Done,
                Err(e) => Reply::Error { message: e.to_string() },
            }
        }
        (Role::Payer(p), Request::Ended { call_id, reason }) => {
            p.ended(&call_id, &reason);
            lock(&state.stopped).remove(&call_id);
            Reply::Done
        }
        (Role::Payee(p), Request::Calls) => Reply::Calls { role: "payee".into(), calls: p.calls(now) },
        (Role::Payer(p), Request::Calls) => Reply::Calls {
            role: "payer".into(),
            // Calls paid on a side channel (INFO-paid calls are listed by the ledger).
            calls: p
                .calls()
                .into_iter()
                .map(|c| CallView { call_id: c.call_id, number: c.number, tariff: c.url, paid_intervals: c.tickets, answered_secs: None })
                .collect(),
        },
        (Role::Payee(p), Request::Ledger { call_id, limit }) => ledger_reply(p.ledger_calls(call_id.as_deref(), limit)),
        (Role::Payer(p), Request::Ledger { call_id, limit }) => ledger_reply(p.payer().ledger_calls(call_id.as_deref(), limit)),
        (Role::Payee(_), Request::Stop { .. }) => Reply::Error { message: "randpay.stop is for a payer (randpay_role payer)".into() },
        (Role::Payee(_), Request::Pay { .. } | Request::PayFirst { .. }) => Reply::Error { message: "randpay_pay needs randpay_role payer".into() },
        (Role::Payer(_), _) => Reply::Error { message: "this needs randpay_role payee".into() },
    }
}

fn ledger_reply(r: Result<Vec<ness_core::randpay::ledger::CallSummary>, ness_core::randpay::LedgerError>) -> Reply {
    match r {
        Ok(calls) => Reply::Ledger { calls },
        Err(e) => Reply::Error { message: e.to_string() },
    }
}

/// The side-channel payer's schedule: every second, ask the payees of the calls due.
async fn pay_schedule(payer: Arc<SidePayer>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        payer.tick(Instant::now());
    }
}

/// Calls paid further since the last pass (INFO or side channel): move the
/// dialog module's own timeout past their new deadline.
fn move_backstops(state: &State, payee: &Payee) {
    let now = Instant::now();
    let mut dialogs = lock(&state.dialogs);
    for (call_id, d) in dialogs.iter_mut() {
        let Some(paid) = payee.paid_intervals(call_id) else { continue };
        if paid > d.backstop_paid
            && let Some(secs) = payee.backstop_secs(call_id, now)
        {
            dialog::set_timeout(d.h_entry, d.h_id, secs);
            d.backstop_paid = paid;
        }
    }
}

/// The payee's schedule: every second, challenges due and calls to end.
async fn schedule(state: Arc<State>) {
    let Role::Payee(payee) = &state.role else { return };
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        move_backstops(&state, payee);
        for action in payee.tick(Instant::now()).await {
            match action {
                PayeeAction::SendChallenge { call_id, header } => {
                    if payee.on_side_channel(&call_id) {
                        continue; // its payer fetches it over HTTP
                    }
                    let Some((he, hi)) = lock(&state.dialogs).get(&call_id).map(|d| (d.h_entry, d.h_id)) else { continue };
                    let headers = format!("Randpay-Challenge: {header}\r\n");
                    if let Err(e) = dialog::send_info_to_caller(he, hi, &headers, script::on_info_reply) {
                        kwarn!("randpay: {call_id}: cannot send the next challenge: {e}");
                        if e == dialog::DialogError::Gone {
                            payee.ended(&call_id, "gone");
                            state.forget(&call_id);
                        }
                    }
                }
                PayeeAction::End { call_id, seq } => {
                    payee.ended(&call_id, "unpaid");
                    let ids = state.forget(&call_id);
                    knotice!("randpay: {call_id}: no ticket for interval {seq}: ending the call on both legs");
                    if let Some((he, hi)) = ids
                        && let Err(e) = dialog::end(he, hi, &format!("SIP;cause=402;text=\"RANDPAY interval {seq} unpaid\""))
                    {
                        kwarn!("randpay: {call_id}: cannot end the call: {e}");
                    }
                }
            }
        }
    }
}
