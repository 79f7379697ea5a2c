//! `RandpayRequire([tariff])`: the payee's gate, first in the context its
//! payers' calls arrive in. A call whose first interval is paid continues (and
//! is metered until it hangs up); any other is refused: `402 Payment Required`
//! on PJSIP (through chan_pjsip's `PJSIPHangup`), else the hangup cause 21.
//!
//! `tariff` (optional) overrides the `[randpay]` tariff table for this call:
//! a price per minute (`0.02`) or a whole tariff line (`+49 0.02 risk=10`).
//!
//! Sets `RANDPAY_STATUS`: `PAID`, `UNPAID` (challenged: the payer did not pay
//! first), `REFUSED` (no tariff, a reused Call-ID; `RANDPAY_REASON` says which)
//! or `ERROR` (node, ledger or module trouble; the call gets 503).

use std::ffi::{CStr, c_char, c_int};
use std::time::Duration;

use ness_core::randpay::session::InviteDecision;

use super::{datastore, host};
use crate::channel::{self, Autoservice};
use crate::config::cstring;
use crate::ffi::{self, AST_CAUSE_CALL_REJECTED, AST_CAUSE_CONGESTION, AST_PBX_HANGUP, AST_PBX_OK, ast_channel};
use crate::log::{adbg, aerr, anotice, awarn, fence};
use crate::{Busy, engine};

pub const NAME: &CStr = c"RandpayRequire";

/// The longest the application waits for the node (a ticket's accept and the
/// next challenge: two RPCs) before refusing the call with 503.
const DECISION_WAIT: Duration = Duration::from_secs(5);

fn tariff_arg(data: *const c_char) -> Option<String> {
    if data.is_null() {
        return None;
    }
    // SAFETY: the application's NUL-terminated argument.
    let a = unsafe { CStr::from_ptr(data) }.to_string_lossy().trim().to_owned();
    if a.is_empty() {
        None
    } else if a.split_whitespace().count() == 1 {
        // A bare price: priced for any number.
        Some(format!("+ {a}"))
    } else {
        Some(a)
    }
}

unsafe fn status(chan: *mut ast_channel, status: &CStr, reason: &str) {
    // SAFETY: the application's channel, not locked.
    unsafe {
        channel::set_var(chan, c"RANDPAY_STATUS", status);
        channel::set_var(chan, c"RANDPAY_REASON", &cstring(reason));
    }
}

unsafe fn require(chan: *mut ast_channel, data: *const c_char) -> c_int {
    // SAFETY: the application's channel, live and not locked, on its PBX thread.
    unsafe {
        let Some(engine) = engine() else {
            status(chan, c"ERROR", "res_privateness is not running");
            return host::refuse(chan, 503, AST_CAUSE_CONGESTION);
        };
        let key = host::call_key(chan);
        if datastore::key_of(chan).is_some() {
            status(chan, c"PAID", "");
            return AST_PBX_OK;
        }
        let (uid, number, ticket, tariff) = (host::uniqueid(chan), host::exten(chan), host::ticket(chan), tariff_arg(data));
        let caller = host::func(chan, "CALLERID(num)").unwrap_or_default();
        let decision = {
            let _media = Autoservice::start(chan);
            let (k, u, n) = (key.clone(), uid.clone(), number.clone());
            engine.randpay(DECISION_WAIT, move |m| async move {
                match m {
                    None => InviteDecision::Refuse(500, "[randpay] role is not payee in privateness.conf".into()),
                    Some(m) => m.invite(&k, &u, &n, &caller, tariff.as_deref(), ticket.as_deref()).await,
                }
            })
        };
        match decision {
            Some(InviteDecision::Proceed) => {
                if !datastore::attach(chan, &key) {
                    aerr!("RandpayRequire: cannot attach metering to the channel (out of memory); refusing {key}");
                    status(chan, c"ERROR", "out of memory");
                    return host::refuse(chan, 503, AST_CAUSE_CONGESTION);
                }
                adbg!("RandpayRequire: {key} ({number}) paid; metering");
                status(chan, c"PAID", "");
                AST_PBX_OK
            }
            Some(InviteDecision::Challenge(_)) => {
                anotice!("RandpayRequire: {key} ({number}) is not paid: 402 (its payer must pay on the side channel first)");
                status(chan, c"UNPAID", "Payment Required");
                host::refuse(chan, 402, AST_CAUSE_CALL_REJECTED)
            }
            Some(InviteDecision::Refuse(code, reason)) if code == 403 || code == 481 => {
                awarn!("RandpayRequire: {key} ({number}) refused: {code} {reason}");
                status(chan, c"REFUSED", &reason);
                host::refuse(chan, code, AST_CAUSE_CALL_REJECTED)
            }
            Some(InviteDecision::Refuse(code, reason)) => {
                aerr!("RandpayRequire: {key} ({number}): {code} {reason}");
                status(chan, c"ERROR", &reason);
                host::refuse(chan, 503, AST_CAUSE_CONGESTION)
            }
            None => {
                aerr!("RandpayRequire: {key} ({number}): no decision within {} s (node or module thread stuck)", DECISION_WAIT.as_secs());
                status(chan, c"ERROR", "no decision in time");
                host::refuse(chan, 503, AST_CAUSE_CONGESTION)
            }
        }
    }
}

unsafe extern "C" fn exec(chan: *mut ast_channel, data: *const c_char) -> c_int {
    let _busy = Busy::enter();
    fence("RandpayRequire", AST_PBX_HANGUP, || {
        if chan.is_null() {
            return AST_PBX_HANGUP;
        }
        // SAFETY: Asterisk runs applications on the channel's PBX thread.
        unsafe { require(chan, data) }
    })
}

/// Register the application; false if the name is taken.
pub fn register() -> bool {
    // SAFETY: static strings; module_self is set before load.
    unsafe {
        ffi::ast_register_application2(
            NAME.as_ptr(),
            Some(exec),
            c"Let a call through only while its RANDPAY tickets are paid".as_ptr(),
            c"RandpayRequire([tariff]): the payee's gate (privateness.conf [randpay] role = payee). A call whose first interval was paid on the HTTP side channel continues and is metered: a late ticket hangs it up (cause 29). Any other call is refused (402 on PJSIP). Sets RANDPAY_STATUS to PAID, UNPAID, REFUSED or ERROR, and RANDPAY_REASON.".as_ptr(),
            crate::module_self(),
        ) == 0
    }
}

pub fn unregister() {
    // SAFETY: registered by `register`.
    unsafe { ffi::ast_unregister_application(NAME.as_ptr()) };
}
