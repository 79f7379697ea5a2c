//! Logging through Asterisk's logger (so lines land in `messages.log` and on the
//! console with the call's id), ness-core's tracing events forwarded to it, and
//! the panic fence every entry point goes through.
//!
//! Nothing here touches a thread-local with a destructor: these functions run on
//! Asterisk's own threads, and such a destructor would keep the module mapped
//! after `module unload` (shared/docs/asterisk-abi.md §2.10).

use std::ffi::{CString, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ffi::{self, LOG_DEBUG, LOG_ERROR, LOG_NOTICE, LOG_WARNING};

/// Log one line at `level`. Safe from any thread.
pub fn alog(level: c_int, msg: &str) {
    let text = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: exported logger; fixed "%s" format with one NUL-terminated string.
    unsafe {
        ffi::ast_log(
            level,
            c"res_privateness.rs".as_ptr(),
            0,
            c"privateness".as_ptr(),
            c"%s\n".as_ptr(),
            text.as_ptr(),
        );
    }
}

/// Whether debug lines are wanted (`core set debug N`).
pub fn debug_enabled() -> bool {
    // SAFETY: a plain int the core exports; read without a lock like the C macro does.
    unsafe { std::ptr::read_volatile(&raw const ffi::option_debug) > 0 }
}

macro_rules! anotice { ($($a:tt)*) => { $crate::log::alog($crate::ffi::LOG_NOTICE, &format!($($a)*)) } }
macro_rules! awarn { ($($a:tt)*) => { $crate::log::alog($crate::ffi::LOG_WARNING, &format!($($a)*)) } }
macro_rules! aerr { ($($a:tt)*) => { $crate::log::alog($crate::ffi::LOG_ERROR, &format!($($a)*)) } }
macro_rules! adbg { ($($a:tt)*) => { if $crate::log::debug_enabled() { $crate::log::alog($crate::ffi::LOG_DEBUG, &format!($($a)*)) } } }
pub(crate) use {adbg, aerr, anotice, awarn};

/// Run `f`; a panic becomes `on_panic` and an error line, never an unwind into C
/// (which would abort Asterisk).
pub fn fence<T>(what: &str, on_panic: T, f: impl FnOnce() -> T) -> T {
    ness_core::fence::catch(f).unwrap_or_else(|why| {
        alog(LOG_ERROR, &format!("{what}: internal error (panic: {why}); the call continues"));
        on_panic
    })
}

/// Forwards ness-core's tracing events to the Asterisk log. A bare `Subscriber`
/// (no registry): spans are not tracked, so no per-thread state exists.
struct AsteriskLog;

impl tracing::Subscriber for AsteriskLog {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::INFO || debug_enabled()
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => LOG_ERROR,
            tracing::Level::WARN => LOG_WARNING,
            tracing::Level::INFO => LOG_NOTICE,
            _ => LOG_DEBUG,
        };
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
        alog(level, &f.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

static TRACING: AtomicBool = AtomicBool::new(false);

/// Install the forwarder once per loaded image (a global, not a thread-local).
pub fn install_tracing() {
    if !TRACING.swap(true, Ordering::SeqCst) {
        let _ = tracing::subscriber::set_global_default(AsteriskLog);
    }
}
