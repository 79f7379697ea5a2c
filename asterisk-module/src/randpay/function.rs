//! `RANDPAY(...)`, the dialplan function of both roles:
//!
//! - `RANDPAY(ticket,number[,payee_url])` (payer), in Dial's `b()` pre-dial
//!   handler on the outgoing channel: asks the payee's side channel for the
//!   call's first challenge, pays it from the wallet (within `max_price`,
//!   `max_risk`, `max_ticket`), hands the ticket over, and from then on pays each
//!   interval while the channel lives. Returns the `Randpay-Ticket` value, for
//!   an optional `PJSIP_HEADER(add,Randpay-Ticket)`; empty when nothing was due.
//!   Sets `RANDPAY_STATUS` to `PAID` or `FAILED` (`RANDPAY_REASON` says why;
//!   the call then goes unpaid and the payee refuses it).
//! - `RANDPAY(paid)`: intervals paid so far for this channel's call (payee), or
//!   tickets sent (payer); empty when the channel is not metered.
//! - `RANDPAY(callid)`: the key the call is metered under (the SIP Call-ID).

use std::ffi::{CStr, c_char, c_int};
use std::time::Duration;

use super::{datastore, host};
use crate::channel::{self, Autoservice};
use crate::config::cstring;
use crate::ffi::{AST_STATIC_DOC, Global, ast_channel, ast_custom_function, ast_string_field_mgr, ast_vector_ptr};
use crate::log::{adbg, awarn, fence};
use crate::{Busy, engine};

unsafe fn fail(chan: *mut ast_channel, reason: &str) {
    // SAFETY: the function's channel, not locked.
    unsafe {
        channel::set_var(chan, c"RANDPAY_STATUS", c"FAILED");
        channel::set_var(chan, c"RANDPAY_REASON", &cstring(reason));
    }
}

unsafe fn ticket(chan: *mut ast_channel, args: &[&str]) -> Result<String, ()> {
    // SAFETY: the function's channel, live and not locked.
    unsafe {
        let Some(engine) = engine() else {
            fail(chan, "res_privateness is not running");
            return Err(());
        };
        let number = args.get(1).map(|n| n.trim()).unwrap_or("");
        if number.is_empty() {
            awarn!("RANDPAY(ticket,number[,payee_url]): the number is missing");
            fail(chan, "no number");
            return Err(());
        }
        let url = args.get(2).map(|u| u.trim().trim_end_matches('/').to_owned()).filter(|u| !u.is_empty());
        let (key, uid, n) = (host::call_key(chan), host::uniqueid(chan), number.to_owned());
        // Side-channel GET and POST plus the node's mktx, each with its own deadline.
        let limit = engine.randpay_side_timeout() * 2 + Duration::from_secs(3);
        let k = key.clone();
        let outcome = {
            let _media = Autoservice::start(chan);
            engine.randpay(limit, move |m| async move {
                match m {
                    None => Err("[randpay] role is not payer in privateness.conf".to_owned()),
                    Some(m) => m.pay_first(&k, &uid, &n, url.as_deref()).await.map_err(|e| e.to_string()),
                }
            })
        };
        match outcome {
            Some(Ok(t)) => {
                if !datastore::attach(chan, &key) {
                    awarn!("RANDPAY: cannot attach metering to the channel (out of memory); {key} will not be paid further");
                }
                adbg!("RANDPAY: {key} ({number}) paid its first interval");
                channel::set_var(chan, c"RANDPAY_STATUS", c"PAID");
                channel::set_var(chan, c"RANDPAY_REASON", c"");
                Ok(t)
            }
            Some(Err(e)) => {
                awarn!("RANDPAY: {key} ({number}): {e}");
                fail(chan, &e);
                Err(())
            }
            None => {
                awarn!("RANDPAY: {key} ({number}): no answer within {} s", limit.as_secs());
                fail(chan, "no answer in time");
                Err(())
            }
        }
    }
}

unsafe fn read(chan: *mut ast_channel, text: &str) -> Result<String, ()> {
    let args: Vec<&str> = text.split(',').collect();
    // SAFETY: the function's channel, live and not locked.
    unsafe {
        match args[0].trim() {
            "ticket" => ticket(chan, &args),
            "callid" => Ok(host::call_key(chan)),
            "paid" => {
                let Some(key) = datastore::key_of(chan) else { return Ok(String::new()) };
                let engine = engine().ok_or(())?;
                Ok(engine
                    .randpay(Duration::from_secs(1), move |m| async move { m.and_then(|m| m.paid(&key)) })
                    .flatten()
                    .map(|n| n.to_string())
                    .unwrap_or_default())
            }
            other => {
                awarn!("RANDPAY({other}): unknown; use RANDPAY(ticket,number[,payee_url]), RANDPAY(paid) or RANDPAY(callid)");
                Err(())
            }
        }
    }
}

unsafe extern "C" fn read_randpay(chan: *mut ast_channel, _cmd: *const c_char, data: *mut c_char, buf: *mut c_char, len: usize) -> c_int {
    let _busy = Busy::enter();
    fence("RANDPAY", -1, || unsafe {
        if buf.is_null() || len == 0 {
            return -1;
        }
        *buf = 0;
        if chan.is_null() {
            awarn!("RANDPAY needs a channel");
            return -1;
        }
        let text = if data.is_null() { String::new() } else { CStr::from_ptr(data).to_string_lossy().into_owned() };
        match read(chan, &text) {
            Ok(v) => {
                let n = v.len().min(len - 1);
                std::ptr::copy_nonoverlapping(v.as_ptr(), buf as *mut u8, n);
                *buf.add(n) = 0;
                if n < v.len() {
                    awarn!("RANDPAY({text}): the value ({} bytes) does not fit the buffer ({len})", v.len());
                    return -1;
                }
                0
            }
            Err(()) => -1,
        }
    })
}

pub static RANDPAY: Global<ast_custom_function> = Global::new(ast_custom_function {
    name: c"RANDPAY".as_ptr(),
    field_mgr_pool: std::ptr::null_mut(),
    synopsis: c"RANDPAY micropayments for this call (payer: pay; both: what was paid)".as_ptr(),
    desc: c"RANDPAY(ticket,number[,payee_url]) on the payer, in Dial's b() pre-dial handler: pays the call's first interval on the payee's side channel and then every interval while the channel lives; returns the Randpay-Ticket value. RANDPAY(paid): intervals paid (payee) or tickets sent (payer) for this channel's call. RANDPAY(callid): the key the call is metered under. Sets RANDPAY_STATUS (PAID or FAILED) and RANDPAY_REASON.".as_ptr(),
    syntax: c"RANDPAY(ticket,number[,payee_url]) | RANDPAY(paid) | RANDPAY(callid)".as_ptr(),
    arguments: c"number: the E.164 number called. payee_url: the payee's side channel (default: payee_url in privateness.conf [randpay]).".as_ptr(),
    seealso: c"RandpayRequire".as_ptr(),
    field_mgr: ast_string_field_mgr {
        last_alloc: std::ptr::null(),
        embedded_pool: std::ptr::null_mut(),
        string_fields: ast_vector_ptr { elems: std::ptr::null_mut(), max: 0, current: 0 },
    },
    docsrc: AST_STATIC_DOC,
    read: Some(read_randpay),
    read2: None,
    read_max: 0,
    write: None,
    mod_: std::ptr::null_mut(),
    escalates: 0,
    acflist_next: std::ptr::null_mut(),
    since: c"res_privateness 0.2".as_ptr(),
    provided_by: c"res_privateness".as_ptr(),
});
