//! Logging through Kamailio's own logger (stderr, syslog or a structured engine,
//! whichever the core uses, honouring `debug=` and per-module levels), tracing
//! events from ness-core forwarded to it, and the panic fence every entry point
//! goes through.

use std::ffi::{CString, c_int};
use std::io::Write;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::ffi::{self, L_DBG, L_ERR, L_INFO, L_NOTICE, L_WARN};

pub const MOD_NAME: &std::ffi::CStr = c"privateness";

fn level_name(l: c_int) -> &'static std::ffi::CStr {
    match l {
        L_ERR => c"ERROR",
        L_WARN => c"WARNING",
        L_NOTICE => c"NOTICE",
        L_INFO => c"INFO",
        L_DBG => c"DEBUG",
        _ => c"CRITICAL",
    }
}

fn syslog_level(l: c_int) -> c_int {
    match l {
        -5 => libc::LOG_ALERT,
        -4..=-2 => libc::LOG_CRIT,
        L_ERR => libc::LOG_ERR,
        L_WARN => libc::LOG_WARNING,
        L_NOTICE => libc::LOG_NOTICE,
        L_INFO => libc::LOG_INFO,
        _ => libc::LOG_DEBUG,
    }
}

/// Lines logged on a helper thread (the RANDPAY process's blocking threads,
/// where a `tariff` hook runs), kept for the process's own thread to write:
/// Kamailio's logger is only for its own threads.
static DEFERRED: Mutex<Vec<(c_int, String)>> = Mutex::new(Vec::new());
static PENDING: AtomicBool = AtomicBool::new(false);
/// Lines kept at most; more are counted and reported as lost.
const DEFERRED_MAX: usize = 1000;
static LOST: AtomicU64 = AtomicU64::new(0);

fn on_own_thread() -> bool {
    // SAFETY: plain system calls. A process's first thread has its pid as tid.
    unsafe { libc::gettid() == libc::getpid() }
}

/// Write the lines helper threads left (called by `klog` and the RANDPAY loop).
pub fn flush_deferred() {
    if !PENDING.load(Ordering::Acquire) || !on_own_thread() {
        return;
    }
    let lines = std::mem::take(&mut *DEFERRED.lock().unwrap_or_else(|p| p.into_inner()));
    PENDING.store(false, Ordering::Release);
    for (level, msg) in lines {
        write(level, &msg);
    }
    let lost = LOST.swap(0, Ordering::Relaxed);
    if lost > 0 {
        write(L_WARN, &format!("{lost} log line(s) from helper threads were dropped (more than {DEFERRED_MAX} waiting)"));
    }
}

/// True if a message at `level` would be logged (on a helper thread: decided
/// when the line is written).
pub fn enabled(level: c_int) -> bool {
    if !on_own_thread() {
        return true;
    }
    // SAFETY: core function, called on a Kamailio thread with a valid name.
    unsafe { ffi::get_debug_level(MOD_NAME.as_ptr(), MOD_NAME.count_bytes() as c_int) >= level }
}

/// Log one line: now on the process's own thread, else when it next logs.
pub fn klog(level: c_int, msg: &str) {
    if !on_own_thread() {
        let mut q = DEFERRED.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() < DEFERRED_MAX {
            q.push((level, msg.to_owned()));
        } else {
            LOST.fetch_add(1, Ordering::Relaxed);
        }
        PENDING.store(true, Ordering::Release);
        return;
    }
    flush_deferred();
    write(level, msg);
}

/// Write one line through the core's logger (the process's own thread only).
fn write(level: c_int, msg: &str) {
    if !enabled(level) {
        return;
    }
    let mn = MOD_NAME.as_ptr();
    let mnlen = MOD_NAME.count_bytes() as c_int;
    let cmsg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: reading core globals (volatile: the core may swap the log function),
    // calling core log functions with NUL-terminated strings and a "%s" format.
    unsafe {
        let facility = ffi::get_debug_facility(mn, mnlen);
        if let Some(slog) = ptr::read_volatile(&raw const ffi::_ksr_slog_func) {
            let mut data = ffi::ksr_logdata_t {
                v_facility: syslog_level(level) | facility,
                v_level: level,
                v_lname: level_name(level).as_ptr(),
                v_fname: c"privateness".as_ptr(),
                v_fline: 0,
                v_mname: mn,
                v_func: c"privateness".as_ptr(),
                v_locinfo: c"privateness: ".as_ptr(),
                v_pid: 0,
                v_pidx: 0,
            };
            slog(&mut data, c"%s\n".as_ptr(), cmsg.as_ptr());
        } else if ptr::read_volatile(&raw const ffi::log_stderr) != 0 {
            let line = format!(
                "{:2}({}) {}: privateness: {}\n",
                ptr::read_volatile(&raw const ffi::process_no),
                ffi::my_pid(),
                level_name(level).to_string_lossy(),
                msg
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
        } else if let Some(f) = ptr::read_volatile(&raw const ffi::_km_log_func) {
            f(syslog_level(level) | facility, c"%s: privateness: %s\n".as_ptr(), level_name(level).as_ptr(), cmsg.as_ptr());
        }
    }
}

macro_rules! kinfo { ($($a:tt)*) => { $crate::log::klog($crate::ffi::L_INFO, &format!($($a)*)) } }
macro_rules! knotice { ($($a:tt)*) => { $crate::log::klog($crate::ffi::L_NOTICE, &format!($($a)*)) } }
macro_rules! kwarn { ($($a:tt)*) => { $crate::log::klog($crate::ffi::L_WARN, &format!($($a)*)) } }
macro_rules! kerr { ($($a:tt)*) => { $crate::log::klog($crate::ffi::L_ERR, &format!($($a)*)) } }
macro_rules! kdbg { ($($a:tt)*) => { if $crate::log::enabled($crate::ffi::L_DBG) { $crate::log::klog($crate::ffi::L_DBG, &format!($($a)*)) } } }
pub(crate) use {kdbg, kerr, kinfo, knotice, kwarn};

/// Run `f`; a panic becomes `on_panic` and an error line, never an unwind into C
/// (which would abort the worker and, with it, the whole server).
pub fn fence<T>(what: &str, on_panic: T, f: impl FnOnce() -> T) -> T {
    ness_core::fence::catch(f).unwrap_or_else(|why| {
        klog(L_ERR, &format!("{what}: internal error (panic: {why}); the request continues"));
        on_panic
    })
}

/// Forwards ness-core's tracing events to the Kamailio log.
struct KamailioLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for KamailioLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => L_ERR,
            tracing::Level::WARN => L_WARN,
            tracing::Level::INFO => L_INFO,
            _ => L_DBG,
        };
        if !enabled(level) {
            return;
        }
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0.insert_str(0, &format!("{value:?}"));
                } else {
                    self.0.push_str(&format!(" {}={value:?}", field.name()));
                }
            }
        }
        let mut f = Fields(String::new());
        event.record(&mut f);
        klog(level, &f.0);
    }
}

/// Install the tracing forwarder (main process, before fork: no threads involved).
pub fn install_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(KamailioLayer);
    let _ = tracing::subscriber::set_global_default(subscriber);
}
