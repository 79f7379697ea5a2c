//! res_privateness.so: ENUM routing from Emercoin NVS in the Asterisk dialplan.
//!
//! A thin FFI shell over ness-core: the module table the loader reads (registered
//! from an ELF constructor, as `AST_MODULE_INFO` does in C), the dialplan
//! functions, CLI commands, privateness.conf, and the life cycle — load, reload
//! without losing the cache, and an unload that waits for calls in progress and
//! joins the module's thread before Asterisk unmaps the code. Resolution, trust,
//! caching and the ENUMLOOKUP-style selection are ness-core's.
//!
//! See README.md for the configuration, functions and CLI; shared/docs/asterisk-abi.md
//! for the interface facts.
#![allow(clippy::missing_safety_doc)]

mod channel;
mod cli;
mod config;
mod engine;
mod ffi;
mod functions;
mod hooks;
mod log;
mod randpay;
mod trunk;

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use config::{Conf, ConfigError, ConfigRead};
use engine::{Build, Engine};
use ffi::{
    AST_MODFLAG_LOAD_ORDER, AST_MODPRI_DEFAULT, AST_MODULE_LOAD_DECLINE, AST_MODULE_LOAD_SUCCESS,
    AST_MODULE_SUPPORT_EXTENDED, ASTERISK_GPL_KEY, Global, ast_module_info,
};
use log::{aerr, anotice, awarn, fence};
use ness_core::settings::ModuleSettings;

// ---- the module table and its registration -----------------------------------------

static MOD_INFO: Global<ast_module_info> = Global::new(ast_module_info {
    self_: std::ptr::null_mut(),
    load: Some(load_module),
    reload: Some(reload_module),
    unload: Some(unload_module),
    name: c"res_privateness".as_ptr(),
    description: c"Privateness: ENUM routing from Emercoin NVS (EMC_ENUM, EMC_NVS) and RANDPAY metering".as_ptr(),
    key: ASTERISK_GPL_KEY.as_ptr(),
    flags: AST_MODFLAG_LOAD_ORDER,
    buildopt_sum: [0; 33],
    load_pri: AST_MODPRI_DEFAULT,
    requires: std::ptr::null(),
    optional_modules: std::ptr::null(),
    enhances: std::ptr::null(),
    reserved1: std::ptr::null_mut(),
    reserved2: std::ptr::null_mut(),
    reserved3: std::ptr::null_mut(),
    reserved4: std::ptr::null_mut(),
    support_level: AST_MODULE_SUPPORT_EXTENDED,
});

unsafe extern "C" fn module_ctor() {
    // SAFETY: the loader expects exactly this call during dlopen; it writes `self_`.
    unsafe { ffi::ast_module_register(MOD_INFO.get()) };
}

unsafe extern "C" fn module_dtor() {
    // SAFETY: pairs with the constructor; runs at dlclose.
    unsafe { ffi::ast_module_unregister(MOD_INFO.get()) };
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: unsafe extern "C" fn() = module_ctor;

#[used]
#[unsafe(link_section = ".fini_array")]
static FINI: unsafe extern "C" fn() = module_dtor;

/// The `ast_module *` the loader gave us (what C's AST_MODULE_SELF is).
pub(crate) fn module_self() -> *mut ffi::ast_module {
    // SAFETY: written once by ast_module_register before load() runs.
    unsafe { (*MOD_INFO.get()).self_ }
}

// ---- state shared by the entry points ------------------------------------------------

static ENGINE: RwLock<Option<Arc<Engine>>> = RwLock::new(None);
/// Reloads and unload one at a time.
static LIFECYCLE: Mutex<()> = Mutex::new(());
/// Entry points running now (function reads, CLI commands).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// The last reload failed: the next one reads the file even if it is unchanged
/// (Asterisk's "unchanged" means unchanged since that failed attempt).
static RELOAD_FAILED: AtomicBool = AtomicBool::new(false);

pub(crate) fn engine() -> Option<Arc<Engine>> {
    ENGINE.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Counts an entry point as running for as long as it lives.
pub(crate) struct Busy;

impl Busy {
    pub fn enter() -> Busy {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        Busy
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

fn build_of(conf: &Conf) -> Result<Build, ConfigError> {
    let s = &conf.general;
    let trunks = match &conf.trunk_config {
        Some(path) => Some(trunk::read(path).map_err(ConfigError::Inconsistent)?),
        None => None,
    };
    Ok(Build {
        trunks,
        randpay: conf.randpay.clone(),
        node: s
            .node_config()
            .map_err(|e| ConfigError::Inconsistent(e.to_string()))?,
        config: s
            .resolver_config()
            .map_err(|e| ConfigError::Inconsistent(e.to_string()))?,
    })
}

// ---- registration of functions and CLI commands -----------------------------------------

/// Register everything; on a failure undo what was done and say what clashed.
fn register_all() -> Result<(), String> {
    let mut done_f = Vec::new();
    for f in functions::all() {
        // SAFETY: a writable static that outlives the registration; module_self is set.
        if unsafe { ffi::__ast_custom_function_register(f.get(), module_self()) } != 0 {
            // SAFETY: reading the static name of our own table.
            let name = unsafe { std::ffi::CStr::from_ptr((*f.get()).name) }
                .to_string_lossy()
                .into_owned();
            for g in done_f {
                // SAFETY: registered just above.
                unsafe { ffi::ast_custom_function_unregister(g) };
            }
            return Err(format!(
                "dialplan function {name} is already registered (is res_privateness loaded twice, under another file name?)"
            ));
        }
        done_f.push(f.get());
    }
    let mut done_c = Vec::new();
    for e in cli::all() {
        // SAFETY: as above, for CLI entries.
        if unsafe { ffi::__ast_cli_register(e.get(), module_self()) } != 0 {
            for c in done_c {
                // SAFETY: registered just above.
                unsafe { ffi::ast_cli_unregister(c) };
            }
            for g in done_f {
                // SAFETY: registered above.
                unsafe { ffi::ast_custom_function_unregister(g) };
            }
            return Err("a privateness CLI command is already registered (is res_privateness loaded twice?)".into());
        }
        done_c.push(e.get());
    }
    if !randpay::app::register() {
        for c in done_c {
            // SAFETY: registered above.
            unsafe { ffi::ast_cli_unregister(c) };
        }
        for g in done_f {
            // SAFETY: registered above.
            unsafe { ffi::ast_custom_function_unregister(g) };
        }
        return Err("the application RandpayRequire is already registered (is res_privateness loaded twice?)".into());
    }
    Ok(())
}

fn unregister_all() {
    randpay::app::unregister();
    for f in functions::all() {
        // SAFETY: registered by register_all; unregistering an unknown one is a no-op error.
        unsafe { ffi::ast_custom_function_unregister(f.get()) };
    }
    for e in cli::all() {
        // SAFETY: as above.
        unsafe { ffi::ast_cli_unregister(e.get()) };
    }
}

// ---- life cycle --------------------------------------------------------------------------

unsafe extern "C" fn load_module() -> c_int {
    fence("load", AST_MODULE_LOAD_DECLINE, || {
        log::install_tracing();
        let _lc = LIFECYCLE.lock().unwrap_or_else(|p| p.into_inner());
        if engine().is_some() {
            aerr!("res_privateness is already running; not loading it again");
            return AST_MODULE_LOAD_DECLINE;
        }
        let settings = match config::read(false) {
            Ok(ConfigRead::Settings(s)) => s,
            Ok(ConfigRead::Unchanged) => Box::new(Conf { general: ModuleSettings::default(), randpay: Default::default(), trunk_config: None, hooks: Default::default() }),
            Err(e) => {
                aerr!("{e}; module declined");
                return AST_MODULE_LOAD_DECLINE;
            }
        };
        let build = match build_of(&settings) {
            Ok(b) => b,
            Err(e) => {
                aerr!("{e}; module declined");
                return AST_MODULE_LOAD_DECLINE;
            }
        };
        let summary = format!(
            "node {} ({:?}), verifiers {:?}, lookup deadline {} ms, cache {} numbers, on node failure: {}",
            build.node.url,
            build.node.credentials,
            build.config.trust.verifiers,
            build.config.lookup_timeout.as_millis(),
            build.config.cache_capacity,
            if build.config.serve_stale {
                "stale answers"
            } else {
                "fail"
            }
        );
        let engine = match Engine::start(build) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                aerr!("{e}; module declined");
                return AST_MODULE_LOAD_DECLINE;
            }
        };
        let hooks_note = match settings.hooks.settings().and_then(|h| hooks::install(h.as_ref())) {
            Ok(note) => note,
            Err(e) => {
                aerr!("{e}; module declined");
                engine.stop();
                return AST_MODULE_LOAD_DECLINE;
            }
        };
        *ENGINE.write().unwrap_or_else(|p| p.into_inner()) = Some(engine.clone());
        if let Err(e) = register_all() {
            aerr!("{e}; module declined");
            ENGINE.write().unwrap_or_else(|p| p.into_inner()).take();
            engine.stop();
            return AST_MODULE_LOAD_DECLINE;
        }
        engine.probe_node();
        anotice!("res_privateness loaded: {summary}{hooks_note}");
        AST_MODULE_LOAD_SUCCESS
    })
}

unsafe extern "C" fn reload_module() -> c_int {
    fence("reload", 1, || {
        let _lc = LIFECYCLE.lock().unwrap_or_else(|p| p.into_inner());
        let rc = reload();
        RELOAD_FAILED.store(rc != 0, Ordering::SeqCst);
        rc
    })
}

/// Re-read privateness.conf (under LIFECYCLE).
fn reload() -> c_int {
    let Some(engine) = engine() else {
        aerr!("reload: res_privateness is not running");
        return 1;
    };
    // With trunks, privateness.conf is read again even if unchanged: their own
    // file (trunk_config) may have changed, and unchanged trunks are kept.
    let skip_unchanged = !RELOAD_FAILED.load(Ordering::SeqCst) && engine.trunk_statuses().is_none();
    let settings = match config::read(skip_unchanged) {
        Ok(ConfigRead::Unchanged) => {
            anotice!("privateness.conf unchanged; nothing to do");
            return 0;
        }
        Ok(ConfigRead::Settings(s)) => s,
        Err(e) => {
            aerr!("reload: {e}; keeping the current settings");
            return 1;
        }
    };
    let build = match build_of(&settings) {
        Ok(b) => b,
        Err(e) => {
            aerr!("reload: {e}; keeping the current settings");
            return 1;
        }
    };
    // The hooks first: a script that does not compile fails the reload and
    // leaves everything as it runs.
    let hooks_note = match settings.hooks.settings().and_then(|h| hooks::install(h.as_ref())) {
        Ok(note) => note,
        Err(e) => {
            aerr!("reload: {e}; keeping the current settings");
            return 1;
        }
    };
    match engine.reconfigure(build) {
        Ok(what) => {
            anotice!("privateness.conf reloaded: {what}{hooks_note}");
            engine.probe_node();
            0
        }
        Err(e) => {
            aerr!("reload: {e}; keeping the current settings");
            1
        }
    }
}

/// How long unload waits for calls in progress: each is bounded by the lookup
/// deadline, so this is only reached if something is badly wrong.
fn drain_limit() -> Duration {
    engine()
        .and_then(|e| e.with_current(|c| c.resolver.config().lookup_timeout.max(c.node.timeout)))
        .unwrap_or_default()
        + Duration::from_secs(2)
}

unsafe extern "C" fn unload_module() -> c_int {
    fence("unload", -1, || {
        let _lc = LIFECYCLE.lock().unwrap_or_else(|p| p.into_inner());
        let calls = channel::LIVE_STATES.load(Ordering::SeqCst);
        if calls > 0 {
            awarn!(
                "unload refused: {calls} call(s) used res_privateness and are still up; retry after they hang up"
            );
            return -1;
        }
        let limit = drain_limit();
        // No new calls from here on; then wait for the ones already inside.
        unregister_all();
        let t0 = Instant::now();
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 && t0.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(5));
        }
        let busy = IN_FLIGHT.load(Ordering::SeqCst);
        if busy > 0 {
            awarn!(
                "unload refused: {busy} lookup(s) still running after {} ms",
                limit.as_millis()
            );
            if let Err(e) = register_all() {
                aerr!("could not register again after a refused unload: {e}");
            }
            return -1;
        }
        hooks::clear();
        if let Some(engine) = ENGINE.write().unwrap_or_else(|p| p.into_inner()).take() {
            engine.stop();
        }
        anotice!("res_privateness unloaded");
        0
    })
}
