//! RPC commands (kamcmd / kamctl rpc). They run in the RPC transport's process;
//! figures come from shared memory, lookups from that process's own resolver.
//!
//! - `privateness.status`: node reachable?, lookups, cache hits and hit rate,
//!   node lookups, stale answers, failures, cache entries (all processes);
//! - `privateness.lookup <number>`: resolve and show targets and ignored records;
//! - `privateness.cache_flush`: empty every process's cache (each process does it
//!   before its next lookup);
//! - `privateness.trunks`: the Skywire trunks the TRUNK process runs (trunk.rs);
//! - `privateness.reload_hooks`: reload the Lua hooks everywhere (hooks.rs).

use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::atomic::Ordering;

use ness_core::enumer::E164;
use ness_core::enumer::route::targets;

use crate::ffi::rpc_t;
use crate::log::fence;
use crate::worker::{CONFIG, stats, with_worker};

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// A reply struct being filled.
struct Reply<'a> {
    rpc: &'a rpc_t,
    handle: *mut c_void,
}

impl<'a> Reply<'a> {
    /// # Safety
    /// `rpc` and `ctx` are the transport's, for the current command.
    unsafe fn new(rpc: &'a rpc_t, ctx: *mut c_void) -> Option<Reply<'a>> {
        let add = rpc.add?;
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: "{" adds a struct and writes its handle.
        if unsafe { add(ctx, c"{".as_ptr(), &mut handle as *mut *mut c_void) } < 0 || handle.is_null() {
            return None;
        }
        Some(Reply { rpc, handle })
    }

    fn str(&self, name: &str, value: &str) {
        let (n, v) = (cstring(name), cstring(value));
        if let Some(sadd) = self.rpc.struct_add {
            // SAFETY: "s" takes a NUL-terminated string; the transport copies it.
            unsafe { sadd(self.handle, c"s".as_ptr(), n.as_ptr(), v.as_ptr()) };
        }
    }

    fn num(&self, name: &str, value: u64) {
        let n = cstring(name);
        if let Some(sadd) = self.rpc.struct_add {
            // SAFETY: "J" takes an unsigned long long.
            unsafe { sadd(self.handle, c"J".as_ptr(), n.as_ptr(), value as libc::c_ulonglong) };
        }
    }
}

unsafe fn fault(rpc: &rpc_t, ctx: *mut c_void, code: c_int, msg: &str) {
    if let Some(f) = rpc.fault {
        let m = cstring(msg);
        // SAFETY: "%s" with a NUL-terminated string.
        unsafe { f(ctx, code, c"%s".as_ptr(), m.as_ptr()) };
    }
}

pub unsafe extern "C" fn rpc_status(rpc: *mut rpc_t, ctx: *mut c_void) {
    fence("privateness.status", (), || unsafe {
        let rpc = &*rpc;
        let Some(r) = Reply::new(rpc, ctx) else { return };
        match with_worker(|w| w.block_count()) {
            Some(Ok(height)) => {
                r.str("node", "reachable");
                r.num("block_height", height);
            }
            Some(Err(e)) => r.str("node", &format!("unreachable: {e}")),
            None => r.str("node", "module not configured"),
        }
        if let Some((node, config)) = CONFIG.get() {
            r.str("node_url", &node.url);
            r.str("verifiers", &config.trust.verifiers.join("|"));
        }
        if let Some(s) = stats() {
            let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            let lookups = get(&s.lookups);
            let hits = get(&s.cache_hits);
            r.num("lookups", lookups);
            r.num("cache_hits", hits);
            let rate = if lookups == 0 { 0.0 } else { 100.0 * hits as f64 / lookups as f64 };
            r.str("cache_hit_rate", &format!("{rate:.1}%"));
            r.num("node_lookups", get(&s.node_lookups));
            r.num("stale_answers", get(&s.stale_answers));
            r.num("found", get(&s.found));
            r.num("not_found", get(&s.not_found));
            r.num("node_failures", get(&s.node_failures));
            r.num("deadlines", get(&s.deadlines));
            r.num("invalid_numbers", get(&s.invalid_numbers));
            r.num("nvs_gets", get(&s.nvs_gets));
            r.num("cache_entries", s.cache_entries.iter().map(get).sum());
        }
    })
}

pub unsafe extern "C" fn rpc_lookup(rpc: *mut rpc_t, ctx: *mut c_void) {
    fence("privateness.lookup", (), || unsafe {
        let rpc = &*rpc;
        let mut arg: *mut c_char = std::ptr::null_mut();
        let scanned = rpc.scan.map_or(0, |scan| scan(ctx, c"s".as_ptr(), &mut arg as *mut *mut c_char));
        if scanned < 1 || arg.is_null() {
            fault(rpc, ctx, 400, "usage: privateness.lookup <number> (with kamcmd write s:+15551234567 so that the number is sent as a string)");
            return;
        }
        let text = std::ffi::CStr::from_ptr(arg).to_string_lossy().into_owned();
        let number = match E164::parse(&text) {
            Ok(n) => n,
            Err(e) => {
                fault(rpc, ctx, 400, &format!("{text:?} is not a phone number: {e}"));
                return;
            }
        };
        let Some(result) = with_worker(|w| w.lookup(&number)) else {
            fault(rpc, ctx, 500, "module not configured");
            return;
        };
        let looked = match result {
            Ok(l) => l,
            Err(e) => {
                fault(rpc, ctx, 503, &e.to_string());
                return;
            }
        };
        let Some(r) = Reply::new(rpc, ctx) else { return };
        r.str("number", &number.to_string());
        let t = targets(&looked.answer, "sip");
        r.str("found", if t.is_empty() { "no" } else { "yes" });
        r.str("source", match looked.source {
            ness_core::enumer::AnswerSource::Node => "node",
            ness_core::enumer::AnswerSource::Cache => "cache",
            ness_core::enumer::AnswerSource::Stale(_) => "stale",
        });
        for (i, target) in t.iter().enumerate() {
            r.str(&format!("target{}", i + 1), &format!("q={:.3} order={} pref={} {}", f64::from(target.q) / 1000.0, target.order, target.preference, target.uri));
        }
        for (i, n) in looked.answer.naptrs.iter().enumerate() {
            let rec = looked.answer.record_of(n).map_or("", |r| r.name.as_str());
            r.str(&format!("naptr{}", i + 1), &format!("{} {} {} {} ({rec})", n.order, n.preference, n.service, n.regexp.as_str()));
        }
        for (i, ig) in looked.answer.ignored.iter().enumerate() {
            r.str(&format!("ignored{}", i + 1), &format!("{}: {}", ig.name, ig.reason));
        }
    })
}

pub unsafe extern "C" fn rpc_cache_flush(rpc: *mut rpc_t, ctx: *mut c_void) {
    fence("privateness.cache_flush", (), || unsafe {
        let rpc = &*rpc;
        let Some(s) = stats() else {
            fault(rpc, ctx, 500, "shared memory not initialised");
            return;
        };
        let generation = s.flush_generation.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(r) = Reply::new(rpc, ctx) else { return };
        r.str("cache", "flushed (each process empties its cache before its next lookup)");
        r.num("generation", generation);
    })
}

// ---- RANDPAY ---------------------------------------------------------------

fn randpay_ask(req: &crate::randpay::ipc::Request) -> Result<crate::randpay::ipc::Reply, String> {
    if crate::randpay::role() == ness_core::randpay::RandpayRole::Off {
        return Err("RANDPAY is off (modparam randpay_role)".into());
    }
    match crate::randpay::ipc::call(req, std::time::Duration::from_secs(5)) {
        Ok(crate::randpay::ipc::Reply::Error { message }) => Err(message),
        Ok(r) => Ok(r),
        Err(e) => Err(e.to_string()),
    }
}

/// `randpay.calls`: one struct per metered call.
pub unsafe extern "C" fn rpc_randpay_calls(rpc: *mut rpc_t, ctx: *mut c_void) {
    fence("randpay.calls", (), || unsafe {
        let rpc = &*rpc;
        match randpay_ask(&crate::randpay::ipc::Request::Calls) {
            Ok(crate::randpay::ipc::Reply::Calls { role, calls }) => {
                for c in calls {
                    let Some(r) = Reply::new(rpc, ctx) else { return };
                    r.str("call_id", &c.call_id);
                    r.str("role", &role);
                    r.str("number", &c.number);
                    if role == "payer" {
                        // Calls the payer pays on a side channel.
                        r.str("payee_url", &c.tariff);
                        r.num("tickets", u64::from(c.paid_intervals));
                        continue;
                    }
                    r.str("tariff", &c.tariff);
                    r.num("paid_intervals", u64::from(c.paid_intervals));
                    match c.answered_secs {
                        Some(s) => r.num("answered_secs", s),
                        None => r.str("answered_secs", "ringing"),
                    }
                }
            }
            Ok(other) => fault(rpc, ctx, 500, &format!("unexpected answer {other:?}")),
            Err(e) => fault(rpc, ctx, 500, &e),
        }
    })
}

/// `randpay.stop <call-id>|all`: the payer pays nothing more for that call
/// (or any call, until restart); the payee then ends it at its deadline.
pub unsafe extern "C" fn rpc_randpay_stop(rpc: *mut rpc_t, ctx: *mut c_void) {
    fence("randpay.stop", (), || unsafe {
        let rpc = &*rpc;
        let mut arg: *mut c_char = std::ptr::null_mut();
        let given = rpc.scan.is_some_and(|scan| scan(ctx, c"s".as_ptr(), &mut arg as *mut *mut c_char) == 1) && !arg.is_null();
        let call_id = if given { std::ffi::CStr::from_ptr(arg).to_string_lossy().trim().to_owned() } else { String::new() };
        if call_id.is_empty() {
            return fault(rpc, ctx, 400, "usage: randpay.stop <call-id> | all");
        }
        match randpay_ask(&crate::randpay::ipc::Request::Stop { call_id: call_id.clone() }) {
            Ok(crate::randpay::ipc::Reply::Done) => {
                let Some(r) = Reply::new(rpc, ctx) else { return };
                r.str("stopped", &call_id);
            }
            Ok(other) => fault(rpc, ctx, 500, &format!("unexpected answer {other:?}")),
            Err(e) => fault(rpc, ctx, 500, &e),
        }
    })
}

/// `randpay.ledger [call-id]`: one call from the ledger, or the 50 most recent, with their totals.
pub unsafe extern "C" fn rpc_randpay_ledger(rpc: *mut rpc_t, ctx: *mut c_void) {
    fence("randpay.ledger", (), || unsafe {
        let rpc = &*rpc;
        let mut arg: *mut c_char = std::ptr::null_mut();
        let given = rpc.scan.is_some_and(|scan| scan(ctx, c"*s".as_ptr(), &mut arg as *mut *mut c_char) == 1) && !arg.is_null();
        let text = if given { std::ffi::CStr::from_ptr(arg).to_string_lossy().trim().to_owned() } else { String::new() };
        // kamcmd sends digits as an integer, which "s" does not scan: a Call-ID
        // argument must not be all digits (or is given as s:<id>).
        let (call_id, limit) = if text.is_empty() { (None, 50) } else { (Some(text), 1) };
        match randpay_ask(&crate::randpay::ipc::Request::Ledger { call_id, limit }) {
            Ok(crate::randpay::ipc::Reply::Ledger { calls }) => {
                let ms = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
                for c in calls {
                    let Some(r) = Reply::new(rpc, ctx) else { return };
                    r.str("call_id", &c.call_id);
                    r.str("role", &c.role);
                    r.str("number", &c.number);
                    r.str("tariff", &c.tariff_prefix);
                    r.num("started_ms", c.started_ms.max(0) as u64);
                    r.str("answered_ms", &ms(c.answered_ms));
                    r.str("ended_ms", &ms(c.ended_ms));
                    r.str("end_reason", c.end_reason.as_deref().unwrap_or("-"));
                    r.num("tickets", u64::from(c.tickets));
                    r.num("won", u64::from(c.won));
                    r.str("expected_value", &c.expected_value.to_string());
                    r.str("won_amount", &c.won_amount.to_string());
                }
            }
            Ok(other) => fault(rpc, ctx, 500, &format!("unexpected answer {other:?}")),
            Err(e) => fault(rpc, ctx, 404, &e),
        }
    })
}

/// `privateness.trunks`: one struct per trunk, from the TRUNK process.
pub unsafe extern "C" fn rpc_trunks(rpc: *mut rpc_t, ctx: *mut c_void) {
    fence("privateness.trunks", (), || unsafe {
        let rpc = &*rpc;
        match crate::trunk::status() {
            Ok(crate::trunk::Answer::Running { trunks }) => {
                for t in trunks {
                    let Some(r) = Reply::new(rpc, ctx) else { return };
                    r.str("name", &t.name);
                    r.str("state", if t.up { "up" } else { "down" });
                    r.str("peer", &t.peer);
                    r.str("carrier", &t.carrier);
                    r.str("local", &t.local);
                    r.str("peer_address", &t.owned);
                    r.num("sessions", t.sessions);
                    r.num("failures", t.failures);
                    r.str("last_failure", &t.last_failure);
                    r.num("sip_out", t.sip_out);
                    r.num("sip_in", t.sip_in);
                    r.num("rtp_out", t.rtp_out);
                    r.num("rtp_in", t.rtp_in);
                    r.num("rtp_dropped", t.rtp_dropped);
                    r.num("unroutable", t.unroutable);
                    r.num("waiting", t.waiting);
                }
            }
            Ok(crate::trunk::Answer::Failed { reason }) => fault(rpc, ctx, 500, &format!("the trunks did not start: {reason}")),
            Err(e) => fault(rpc, ctx, 500, &e),
        }
    })
}

/// `privateness.reload_hooks`: compile the script here; if it compiles, every
/// process reloads it before its next hook call.
pub unsafe extern "C" fn rpc_reload_hooks(rpc: *mut rpc_t, ctx: *mut c_void) {
    fence("privateness.reload_hooks", (), || unsafe {
        let rpc = &*rpc;
        match crate::hooks::request_reload() {
            Ok(what) => {
                if let Some(r) = Reply::new(rpc, ctx) {
                    r.str("reload", &what);
                }
            }
            Err(e) => fault(rpc, ctx, 500, &e),
        }
    })
}
