//! What RANDPAY reads from and does to Asterisk channels: the call's key (the
//! SIP Call-ID both PBXes see), the `Randpay-Ticket` of an INVITE, the answer
//! time, and hanging up an unpaid call from the module's thread.
//!
//! On PJSIP channels the key and ticket come from `CHANNEL(pjsip,call-id)` and
//! `PJSIP_HEADER(read,Randpay-Ticket)`. Other channel types (Local, IAX2, test
//! harnesses) carry them in the variables `RANDPAY_CALLID` and `RANDPAY_TICKET`;
//! without `RANDPAY_CALLID` the key is the channel's uniqueid.

use std::ffi::{CStr, c_char};
use std::time::{Duration, Instant, SystemTime};

use crate::channel::Locked;
use crate::config::cstring;
use crate::ffi::{self, ast_channel};

/// Longest value read through a dialplan function (a ticket is ~500 bytes).
const READ_MAX: usize = 4096;

unsafe fn owned(p: *const c_char) -> Option<String> {
    // SAFETY: per the caller, a NUL-terminated string or null.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// The channel technology (`PJSIP`, `Local`, …).
///
/// # Safety
/// `chan` is a live channel of the current callback.
pub unsafe fn tech(chan: *mut ast_channel) -> String {
    // SAFETY: per the caller; the tech struct is static in its channel driver.
    unsafe {
        let t = ffi::ast_channel_tech(chan);
        if t.is_null() { String::new() } else { owned((*t).type_).unwrap_or_default() }
    }
}

/// # Safety
/// `chan` is a live channel of the current callback.
pub unsafe fn uniqueid(chan: *mut ast_channel) -> String {
    // SAFETY: per the caller; the uniqueid never changes during the channel's life.
    unsafe { owned(ffi::ast_channel_uniqueid(chan)).unwrap_or_default() }
}

/// # Safety
/// `chan` is a live channel of the current callback.
pub unsafe fn exten(chan: *mut ast_channel) -> String {
    // SAFETY: per the caller; read under the channel lock (the PBX may change it).
    unsafe {
        let _lock = Locked::new(chan);
        owned(ffi::ast_channel_exten(chan)).unwrap_or_default()
    }
}

/// A channel variable, copied.
///
/// # Safety
/// `chan` is a live channel of the current callback, not locked.
pub unsafe fn var(chan: *mut ast_channel, name: &CStr) -> Option<String> {
    // SAFETY: per the caller; the value is only valid under the channel lock.
    unsafe {
        let _lock = Locked::new(chan);
        owned(ffi::pbx_builtin_getvar_helper(chan, name.as_ptr())).filter(|v| !v.is_empty())
    }
}

/// A dialplan function's value (`CHANNEL(pjsip,call-id)`); None when it fails or is empty.
///
/// # Safety
/// `chan` is a live channel of the current callback, not locked.
pub(crate) unsafe fn func(chan: *mut ast_channel, expr: &str) -> Option<String> {
    let mut buf = vec![0 as c_char; READ_MAX];
    let expr = cstring(expr);
    // SAFETY: per the caller; the buffer has READ_MAX bytes and is NUL-terminated by the core.
    unsafe {
        if ffi::ast_func_read(chan, expr.as_ptr(), buf.as_mut_ptr(), buf.len()) != 0 {
            return None;
        }
        buf[READ_MAX - 1] = 0;
        owned(buf.as_ptr()).filter(|v| !v.is_empty())
    }
}

/// The key both PBXes know the call by.
///
/// # Safety
/// `chan` is a live channel of the current callback, not locked.
pub unsafe fn call_key(chan: *mut ast_channel) -> String {
    // SAFETY: per the caller.
    unsafe {
        if tech(chan) == "PJSIP"
            && let Some(id) = func(chan, "CHANNEL(pjsip,call-id)")
        {
            return id;
        }
        var(chan, c"RANDPAY_CALLID").unwrap_or_else(|| uniqueid(chan))
    }
}

/// The `Randpay-Ticket` the call came with, if any.
///
/// # Safety
/// `chan` is a live channel of the current callback, not locked.
pub unsafe fn ticket(chan: *mut ast_channel) -> Option<String> {
    // SAFETY: per the caller.
    unsafe {
        if tech(chan) == "PJSIP" {
            return func(chan, "PJSIP_HEADER(read,Randpay-Ticket)");
        }
        var(chan, c"RANDPAY_TICKET")
    }
}

/// A channel found by uniqueid, holding a reference until dropped.
struct Found(*mut ast_channel);

impl Found {
    fn by_uniqueid(uid: &str) -> Option<Found> {
        let c = cstring(uid);
        // SAFETY: exported lookup; returns +1 reference or NULL.
        let chan = unsafe { ffi::ast_channel_get_by_name(c.as_ptr()) };
        (!chan.is_null()).then_some(Found(chan))
    }
}

impl Drop for Found {
    fn drop(&mut self) {
        // SAFETY: releases the reference get_by_name gave (what ast_channel_unref does).
        unsafe {
            ffi::__ao2_ref(self.0, -1, c"randpay".as_ptr(), c"host.rs".as_ptr(), 0, c"Found::drop".as_ptr());
        }
    }
}

/// Where a metered channel is.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Hung up (or never existed).
    Gone,
    Ringing,
    /// Answered at this instant.
    At(Instant),
}

/// Has the channel with this uniqueid been answered? Safe from any thread.
pub fn answer_of(uid: &str) -> Answer {
    let Some(ch) = Found::by_uniqueid(uid) else { return Answer::Gone };
    // SAFETY: a referenced channel; the answer time is a plain field written once.
    let tv = unsafe { ffi::ast_channel_answertime(ch.0) };
    if tv.tv_sec <= 0 {
        return Answer::Ringing;
    }
    let at = SystemTime::UNIX_EPOCH + Duration::new(tv.tv_sec as u64, (tv.tv_usec.clamp(0, 999_999) * 1000) as u32);
    let ago = SystemTime::now().duration_since(at).unwrap_or_default();
    Answer::At(Instant::now().checked_sub(ago).unwrap_or_else(Instant::now))
}

/// Hang up the channel with this uniqueid with `cause` (what `Hangup(cause)` does;
/// a bridged call ends on both legs). False if it is already gone. Safe from any thread.
pub fn hang_up(uid: &str, cause: i32) -> bool {
    let Some(ch) = Found::by_uniqueid(uid) else { return false };
    // SAFETY: a referenced channel; the call locks it itself.
    unsafe { ffi::ast_channel_softhangup_withcause_locked(ch.0, cause) };
    true
}

/// Refuse the call on the PBX thread: `PJSIPHangup(code)` on a PJSIP channel
/// (a real 402 on the wire), else the hangup cause `fallback`. Returns what the
/// application must return.
///
/// # Safety
/// `chan` is the live channel of the application's callback, not locked.
pub unsafe fn refuse(chan: *mut ast_channel, code: u16, fallback: i32) -> i32 {
    // SAFETY: per the caller.
    unsafe {
        if tech(chan) == "PJSIP" {
            let app = ffi::pbx_findapp(c"PJSIPHangup".as_ptr());
            if !app.is_null() {
                let data = cstring(&code.to_string());
                return ffi::pbx_exec(chan, app, data.as_ptr());
            }
        }
        ffi::ast_channel_hangupcause_set(chan, fallback);
        ffi::AST_PBX_HANGUP
    }
}
