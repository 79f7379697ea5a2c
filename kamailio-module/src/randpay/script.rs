//! The RANDPAY script functions (native cfg and KEMI) and the callbacks the
//! dialog and tm modules call. Each asks the RANDPAY process (ipc.rs) and acts
//! on the answer: reply 402 with a challenge, let the call through, attach a
//! ticket, answer an INFO. Return codes (never 0, which would stop the script):
//!
//! | code | `randpay_require` (payee) | `randpay_pay` (payer) |
//! |---|---|---|
//! | 1 | paid: relay the INVITE | ticket attached (relay it), INFO answered, or end noted |
//! | -1 | 402 sent with a challenge | nothing to pay here (relay as is); in failure_route: the call failed, end noted |
//! | -2 | refused, reply sent (403 no tariff, 503 node or ledger down) | refused to pay (policy, wallet, node) |
//! | -3 | module error (wrong role, not an INVITE, no dialog) | module error |

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;
use std::time::Duration;

use ness_core::enumer::E164;
use ness_core::randpay::RandpayRole;

use super::dialog::{self, DLGCB_CONFIRMED_NA, DLGCB_EXPIRED, DLGCB_FAILED, DLGCB_TERMINATED, FAKED_REPLY, dlg_cb_params, dlg_cell, tmcb_params};
use super::ipc::{self, Reply, Request};
use super::{notify, role};
use crate::ffi::{self, FAILURE_ROUTE, REQUEST_ROUTE, sip_msg, str_t};
use crate::host::{self, PvSpec};
use crate::log::{fence, kdbg, kerr, kinfo, knotice, kwarn};
use crate::worker::CONFIG;

pub const PAID: c_int = 1;
pub const CHALLENGED: c_int = -1;
pub const NOTHING: c_int = -1;
pub const REFUSED: c_int = -2;
pub const MODULE_ERROR: c_int = -3;

/// The pseudo-variables the functions read, resolved in mod_init.
struct Pvs {
    call_id: PvSpec,
    method: PvSpec,
    ruri: PvSpec,
    ruri_user: PvSpec,
    to_tag: PvSpec,
    ticket: PvSpec,
    challenge: PvSpec,
    /// Payer only: the challenge in the 402, and the reply's code (tmx.so).
    reply_challenge: Option<PvSpec>,
    reply_code: Option<PvSpec>,
}

// SAFETY: see PvSpec.
static PVS: OnceLock<Pvs> = OnceLock::new();

pub fn resolve_pvs(role: RandpayRole) -> Result<(), String> {
    let pv = |name: &str| PvSpec::resolve(name).ok_or_else(|| format!("randpay: cannot resolve {name}: loadmodule \"pv.so\" is needed"));
    let tmx = |name: &str| {
        if role == RandpayRole::Payer {
            PvSpec::resolve(name).map(Some).ok_or_else(|| format!("randpay: cannot resolve {name}: a payer needs loadmodule \"tmx.so\""))
        } else {
            Ok(None)
        }
    };
    let reply_challenge = tmx("$T_rpl($hdr(Randpay-Challenge))")?;
    let reply_code = tmx("$T_reply_code")?;
    let _ = PVS.set(Pvs {
        call_id: pv("$ci")?,
        method: pv("$rm")?,
        ruri: pv("$ru")?,
        ruri_user: pv("$rU")?,
        to_tag: pv("$tt")?,
        ticket: pv("$hdr(Randpay-Ticket)")?,
        challenge: pv("$hdr(Randpay-Challenge)")?,
        reply_challenge,
        reply_code,
    });
    Ok(())
}

/// # Safety
/// `msg` is a message the core handed to the current call.
unsafe fn text(msg: *mut sip_msg, pv: PvSpec) -> Option<String> {
    // SAFETY: per the caller.
    unsafe { pv.get(msg) }.map(|b| String::from_utf8_lossy(&b).trim().to_owned()).filter(|s| !s.is_empty())
}

/// How long a worker waits for an answer that needs the node (plus the ledger).
fn node_deadline() -> Duration {
    CONFIG.get().map_or(Duration::from_secs(3), |(n, _)| n.timeout * 2 + Duration::from_millis(500))
}

/// The number a call is priced by: `+` and digits.
fn e164(number: &str) -> Option<String> {
    let n = number.trim();
    let n = n.strip_prefix("00").map(|r| format!("+{r}")).unwrap_or_else(|| n.to_owned());
    E164::parse(&n).ok().map(|e| e.to_string())
}

/// `randpay_require([tariff])`: `tariff` is a number to price by the tariff
/// table (default `$rU`), or a whole tariff line (`+ 0.02 risk=10 interval=30`).
///
/// # Safety
/// `msg` is the request of the current script function.
unsafe fn require(msg: *mut sip_msg, arg: Option<String>) -> c_int {
    if role() != RandpayRole::Payee {
        kerr!("randpay_require: modparam randpay_role is not payee");
        return MODULE_ERROR;
    }
    let Some(pvs) = PVS.get() else { return MODULE_ERROR };
    // SAFETY: the current message.
    let (method, call_id) = unsafe { (text(msg, pvs.method), text(msg, pvs.call_id)) };
    if method.as_deref() != Some("INVITE") {
        kerr!("randpay_require: only for an initial INVITE (got {method:?})");
        return MODULE_ERROR;
    }
    let Some(call_id) = call_id else { return MODULE_ERROR };
    let arg = arg.filter(|a| !a.trim().is_empty());
    let (number_text, tariff) = match arg {
        Some(a) if a.trim().contains(char::is_whitespace) => (unsafe { text(msg, pvs.ruri_user) }, Some(a.trim().to_owned())),
        Some(a) => (Some(a), None),
        None => (unsafe { text(msg, pvs.ruri_user) }, None),
    };
    let Some(number) = number_text.as_deref().and_then(e164) else {
        kdbg!("randpay_require: {number_text:?} is not an E.164 number");
        // SAFETY: the current request.
        unsafe { dialog::reply(msg, 403, "No Tariff For This Destination", None) };
        return REFUSED;
    };
    // SAFETY: the current message.
    let ticket = unsafe { text(msg, pvs.ticket) };
    // SAFETY: the current message.
    let caller = String::from_utf8_lossy(&unsafe { crate::script::from_user(msg) }).into_owned();
    let req = Request::Invite { call_id: call_id.clone(), number, caller, tariff, ticket };
    match ipc::call(&req, node_deadline()) {
        Ok(Reply::Challenge { header }) => {
            // SAFETY: the current request.
            if unsafe { dialog::reply(msg, 402, "Payment Required", Some(&format!("Randpay-Challenge: {header}"))) } {
                CHALLENGED
            } else {
                kerr!("randpay_require: cannot send the 402");
                MODULE_ERROR
            }
        }
        Ok(Reply::Proceed { backstop_secs }) => {
            let events = DLGCB_CONFIRMED_NA | DLGCB_FAILED | DLGCB_TERMINATED | DLGCB_EXPIRED;
            // SAFETY: the current initial INVITE.
            match unsafe { dialog::follow(msg, backstop_secs, events, on_dialog_event) } {
                Ok(()) => PAID,
                Err(e) => {
                    kerr!("randpay_require: {e}; refusing the call rather than carrying it unmetered");
                    notify(Request::Ended { call_id, reason: "no dialog".into() });
                    unsafe { dialog::reply(msg, 500, "Metering Unavailable", None) };
                    MODULE_ERROR
                }
            }
        }
        Ok(Reply::Refuse { code, reason }) => {
            unsafe { dialog::reply(msg, code, &reason, None) };
            REFUSED
        }
        Ok(Reply::Error { message }) => {
            kerr!("randpay_require: {message}");
            unsafe { dialog::reply(msg, 500, "Metering Error", None) };
            REFUSED
        }
        Ok(other) => {
            kerr!("randpay_require: unexpected answer {other:?}");
            MODULE_ERROR
        }
        Err(e) => {
            kerr!("randpay_require: {e}");
            unsafe { dialog::reply(msg, 503, "Payment Service Unavailable", None) };
            REFUSED
        }
    }
}

/// Ask the RANDPAY process for the ticket answering `challenge`.
fn ticket_for(call_id: &str, number: &str, challenge: &str) -> Result<String, String> {
    let req = Request::Pay { call_id: call_id.to_owned(), number: number.to_owned(), challenge: challenge.to_owned() };
    match ipc::call(&req, node_deadline()) {
        Ok(Reply::Ticket { header }) => Ok(header),
        Ok(Reply::Error { message }) => Err(message),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// With `randpay_payee_url`: pay the first interval of an initial INVITE on the
/// payee's side channel and attach the ticket (the RANDPAY process then keeps
/// paying there).
///
/// # Safety
/// `msg` is the current request.
unsafe fn pay_first(msg: *mut sip_msg, call_id: String, number: String) -> c_int {
    let req = Request::PayFirst { call_id: call_id.clone(), number };
    // GET on the side channel, mktx, each with its own deadline.
    let deadline = node_deadline() + side_timeout();
    match ipc::call(&req, deadline) {
        Ok(Reply::Ticket { header }) => {
            // SAFETY: append_header adds a lump to the current request.
            if unsafe { dialog::append_header(msg, &format!("Randpay-Ticket: {header}")) } {
                kdbg!("randpay_pay: {call_id}: paid the first interval on the side channel");
                PAID
            } else {
                kerr!("randpay_pay: cannot add the Randpay-Ticket header");
                MODULE_ERROR
            }
        }
        Ok(Reply::Done) => NOTHING,
        Ok(Reply::Error { message }) => {
            knotice!("randpay_pay: {call_id}: not paying: {message}");
            REFUSED
        }
        Ok(other) => {
            kerr!("randpay_pay: unexpected answer {other:?}");
            MODULE_ERROR
        }
        Err(e) => {
            knotice!("randpay_pay: {call_id}: {e}");
            REFUSED
        }
    }
}

fn side_timeout() -> Duration {
    super::RANDPAY.lock().unwrap_or_else(|p| p.into_inner()).side_timeout
}

/// `randpay_pay()`: in failure_route after a 402, attach the ticket to the
/// retried INVITE (after any other failure, note the call's end); in request_route, pay an initial INVITE's first interval on
/// the side channel (`randpay_payee_url`), answer an INFO carrying a challenge,
/// or note the end of a call on BYE.
///
/// # Safety
/// `msg` is the message of the current script function.
unsafe fn pay(msg: *mut sip_msg) -> c_int {
    if role() != RandpayRole::Payer {
        kerr!("randpay_pay: modparam randpay_role is not payer");
        return MODULE_ERROR;
    }
    let Some(pvs) = PVS.get() else { return MODULE_ERROR };
    // SAFETY (all pv reads below): the current message.
    let Some(call_id) = (unsafe { text(msg, pvs.call_id) }) else { return MODULE_ERROR };
    let number = unsafe { text(msg, pvs.ruri_user) }.unwrap_or_default();
    let route = dialog::current_route();
    if route & FAILURE_ROUTE != 0 {
        let code = pvs.reply_code.and_then(|pv| unsafe { text(msg, pv) }).unwrap_or_default();
        let challenge = pvs.reply_challenge.and_then(|pv| unsafe { text(msg, pv) });
        let Some(challenge) = challenge.filter(|_| code == "402") else {
            // Failed or canceled: the call ends here (the side channel's polling too).
            notify(Request::Ended { call_id, reason: format!("failed {code}").trim().to_owned() });
            return NOTHING;
        };
        return match ticket_for(&call_id, &number, &challenge) {
            Ok(ticket) => {
                let Some(ruri) = (unsafe { pvs.ruri.get(msg) }) else { return MODULE_ERROR };
                let mut s = str_t::borrow(&ruri);
                // A new branch needs a "new" R-URI (as uac_auth does); then the header.
                // SAFETY: rewrite_uri copies; append_header adds a lump to this request.
                if unsafe { ffi::rewrite_uri(msg, &mut s) } != 1 || !unsafe { dialog::append_header(msg, &format!("Randpay-Ticket: {ticket}")) } {
                    kerr!("randpay_pay: cannot prepare the paid INVITE");
                    return MODULE_ERROR;
                }
                kdbg!("randpay_pay: {call_id}: paid the first interval");
                PAID
            }
            Err(e) => {
                knotice!("randpay_pay: {call_id}: not paying: {e}");
                REFUSED
            }
        };
    }
    if route & REQUEST_ROUTE == 0 {
        kerr!("randpay_pay: use it in request_route or failure_route");
        return MODULE_ERROR;
    }
    match unsafe { text(msg, pvs.method) }.as_deref() {
        Some("INVITE") if unsafe { text(msg, pvs.to_tag) }.is_none() => {
            if super::RANDPAY.lock().unwrap_or_else(|p| p.into_inner()).payee_url.is_none() {
                return NOTHING; // paid in failure_route when the payee answers 402
            }
            let Some(number) = e164(&number) else {
                knotice!("randpay_pay: {call_id}: {number:?} is not an E.164 number; not paying");
                return REFUSED;
            };
            unsafe { pay_first(msg, call_id, number) }
        }
        Some("INFO") => {
            let Some(challenge) = (unsafe { text(msg, pvs.challenge) }) else { return NOTHING };
            match ticket_for(&call_id, &number, &challenge) {
                Ok(ticket) => {
                    if unsafe { dialog::reply(msg, 200, "OK", Some(&format!("Randpay-Ticket: {ticket}"))) } {
                        PAID
                    } else {
                        MODULE_ERROR
                    }
                }
                Err(e) => {
                    knotice!("randpay_pay: {call_id}: not paying: {e}");
                    unsafe { dialog::reply(msg, 403, "Payment Refused", None) };
                    REFUSED
                }
            }
        }
        Some("BYE") | Some("CANCEL") => {
            notify(Request::Ended { call_id, reason: "bye".into() });
            PAID
        }
        _ => NOTHING,
    }
}

/// Dialog events of a metered call (any process).
pub unsafe extern "C" fn on_dialog_event(cell: *mut dlg_cell, kind: c_int, _params: *mut dlg_cb_params) {
    fence("randpay dialog callback", (), || {
        if cell.is_null() {
            return;
        }
        // SAFETY: the dialog module hands us a live cell for the callback's duration.
        let id = unsafe { dialog::dialog_id(cell) };
        let req = match kind {
            DLGCB_CONFIRMED_NA => Request::Answered { call_id: id.call_id, h_entry: id.h_entry, h_id: id.h_id },
            DLGCB_FAILED => Request::Ended { call_id: id.call_id, reason: "failed".into() },
            DLGCB_TERMINATED => Request::Ended { call_id: id.call_id, reason: "bye".into() },
            DLGCB_EXPIRED => Request::Ended { call_id: id.call_id, reason: "expired".into() },
            _ => return,
        };
        notify(req);
    })
}

/// The final reply to our INFO (any process): hand its ticket to the RANDPAY process.
pub unsafe extern "C" fn on_info_reply(_t: *mut c_void, _kind: c_int, ps: *mut tmcb_params) {
    fence("randpay INFO reply", (), || {
        if ps.is_null() {
            return;
        }
        // SAFETY: tm's parameters for the duration of the callback.
        let (code, rpl) = unsafe { ((*ps).code, (*ps).rpl) };
        if rpl.is_null() || rpl == FAKED_REPLY {
            kwarn!("randpay: the payer did not answer a challenge ({code}); the call ends at its deadline unless it pays");
            return;
        }
        let Some(pvs) = PVS.get() else { return };
        // SAFETY: the reply message tm hands us.
        let (call_id, ticket) = unsafe { (text(rpl, pvs.call_id), text(rpl, pvs.ticket)) };
        match (call_id, ticket) {
            (Some(call_id), Some(ticket)) if code == 200 => notify(Request::Ticket { call_id, ticket }),
            (call_id, _) => kinfo!("randpay: {call_id:?}: the payer answered the challenge with {code} and no ticket"),
        }
    })
}

// ---- native cfg ----------------------------------------------------------

pub unsafe extern "C" fn w_require0(msg: *mut sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    fence("randpay_require", MODULE_ERROR, || unsafe { require(msg, None) })
}

pub unsafe extern "C" fn w_require1(msg: *mut sip_msg, p1: *mut c_char, _: *mut c_char) -> c_int {
    fence("randpay_require", MODULE_ERROR, || unsafe {
        let Some(arg) = host::fparam_str(msg, p1) else {
            kerr!("randpay_require: cannot evaluate the parameter");
            return MODULE_ERROR;
        };
        require(msg, Some(String::from_utf8_lossy(&arg).into_owned()))
    })
}

pub unsafe extern "C" fn w_pay(msg: *mut sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    fence("randpay_pay", MODULE_ERROR, || unsafe { pay(msg) })
}

// ---- KEMI ----------------------------------------------------------------

pub unsafe extern "C" fn ki_require(msg: *mut sip_msg) -> c_int {
    fence("randpay_require", MODULE_ERROR, || unsafe { require(msg, None) })
}

pub unsafe extern "C" fn ki_require_tariff(msg: *mut sip_msg, tariff: *mut str_t) -> c_int {
    fence("randpay_require", MODULE_ERROR, || unsafe {
        let arg = if tariff.is_null() { String::new() } else { String::from_utf8_lossy((*tariff).as_bytes()).into_owned() };
        require(msg, Some(arg))
    })
}

pub unsafe extern "C" fn ki_pay(msg: *mut sip_msg) -> c_int {
    fence("randpay_pay", MODULE_ERROR, || unsafe { pay(msg) })
}
