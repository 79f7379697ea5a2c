//! privateness.so: ENUM routing from Emercoin NVS inside Kamailio.
//!
//! A thin FFI shell over ness-core: the tables Kamailio reads (`exports`, the
//! version strings, KEMI), modparam setters, script functions, RPC commands and
//! panic fences. Resolution, trust, caching and fork targets are ness-core's.
//! See README.md for parameters, functions and RPC; shared/docs/kamailio-abi.md
//! for the interface facts.
#![allow(clippy::missing_safety_doc)]

mod ffi;
mod hooks;
mod host;
mod log;
mod randpay;
mod rpc;
mod script;
mod trunk;
mod worker;

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::ptr;

use ffi::{
    BRANCH_ROUTE, FAILURE_ROUTE, Ffi, PARAM_INT, PARAM_STRING, PARAM_USE_FUNC, REQUEST_ROUTE, SR_KEMIP_INT,
    SR_KEMIP_NONE, SR_KEMIP_STR, SR_KEMIP_XVAL, cmd_export_t, module_exports, param_export_t, rpc_export_t, sr_kemi_t,
    str_t,
};
use log::{MOD_NAME, fence, kerr, kinfo};
use worker::{CONFIG, SETTINGS};

// ---- version symbols (checked by the core before anything else) --------------

const VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("NESS_KAMAILIO_MODULE_VERSION"), "\0").as_bytes()) {
    Ok(s) => s,
    Err(_) => panic!("bad module version string"),
};
const FLAGS: &CStr = match CStr::from_bytes_with_nul(concat!(env!("NESS_KAMAILIO_MODULE_FLAGS"), "\0").as_bytes()) {
    Ok(s) => s,
    Err(_) => panic!("bad module flags string"),
};

#[unsafe(no_mangle)]
pub static module_version: Ffi<*const c_char> = Ffi(VERSION.as_ptr());
#[unsafe(no_mangle)]
pub static module_flags: Ffi<*const c_char> = Ffi(FLAGS.as_ptr());
#[unsafe(no_mangle)]
pub static module_interface_ver: c_uint = 4;

// ---- modparams ---------------------------------------------------------------

/// Apply one modparam (main process, while the cfg is parsed). Returns < 0 to
/// make Kamailio refuse the cfg.
unsafe fn set_param(key: &str, ptype: c_uint, val: *mut c_void) -> c_int {
    let text = if ptype & PARAM_INT != 0 {
        (val as isize).to_string()
    } else if !val.is_null() {
        // SAFETY: for PARAM_STRING the core passes a NUL-terminated string.
        unsafe { CStr::from_ptr(val as *const c_char) }.to_string_lossy().into_owned()
    } else {
        String::new()
    };
    let result = match key {
        "randpay_side_channel" => {
            randpay::SIDE_CHANNEL_TEXT.lock().unwrap_or_else(|p| p.into_inner()).0 = text;
            Ok(())
        }
        "randpay_side_peers" => {
            randpay::SIDE_CHANNEL_TEXT.lock().unwrap_or_else(|p| p.into_inner()).1 = text;
            Ok(())
        }
        k if k.starts_with("hooks_") => hooks::set(k, &text),
        "trunk_config" => {
            *trunk::CONFIG_PATH.lock().unwrap_or_else(|p| p.into_inner()) = text;
            Ok(())
        }
        k if k.starts_with("randpay_") => randpay::RANDPAY.lock().unwrap_or_else(|p| p.into_inner()).set(k, &text).map_err(|e| e.to_string()),
        _ => SETTINGS.lock().unwrap_or_else(|p| p.into_inner()).set(key, &text).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            kerr!("modparam: {e}");
            -1
        }
    }
}

macro_rules! setters {
    ($($fname:ident => $key:literal),* $(,)?) => {
        $(
            unsafe extern "C" fn $fname(ptype: c_uint, val: *mut c_void) -> c_int {
                fence(concat!("modparam ", $key), -1, || unsafe { set_param($key, ptype, val) })
            }
        )*
    };
}

setters! {
    p_node_url => "node_url",
    p_emercoin_conf => "emercoin_conf",
    p_rpc_user => "rpc_user",
    p_rpc_password => "rpc_password",
    p_cookie_file => "cookie_file",
    p_timeout_ms => "timeout_ms",
    p_lookup_timeout_ms => "lookup_timeout_ms",
    p_cache_size => "cache_size",
    p_ttl_cap => "ttl_cap",
    p_negative_ttl => "negative_ttl",
    p_stale_ttl => "stale_ttl",
    p_verifiers => "verifiers",
    p_require_signature => "require_signature",
    p_privatenumer_layout => "privatenumer_layout",
    p_max_records => "max_records",
    p_on_node_failure => "on_node_failure",
    p_randpay_role => "randpay_role",
    p_randpay_wallet => "randpay_wallet",
    p_randpay_ledger => "randpay_ledger",
    p_randpay_tariff => "randpay_tariff",
    p_randpay_max_price => "randpay_max_price",
    p_randpay_max_risk => "randpay_max_risk",
    p_randpay_max_ticket => "randpay_max_ticket",
    p_randpay_side_channel => "randpay_side_channel",
    p_randpay_side_peers => "randpay_side_peers",
    p_randpay_payee_url => "randpay_payee_url",
    p_randpay_side_timeout_ms => "randpay_side_timeout_ms",
    p_trunk_config => "trunk_config",
    p_hooks_script => "hooks_script",
    p_hooks_instructions => "hooks_instructions",
    p_hooks_memory_kb => "hooks_memory_kb",
    p_hooks_allow => "hooks_allow",
}

const fn param(name: &'static CStr, type_: c_uint, f: ffi::param_func_t) -> param_export_t {
    param_export_t { name: name.as_ptr(), type_: type_ | PARAM_USE_FUNC, param_pointer: f as *mut c_void }
}

const S: c_uint = PARAM_STRING;
const I: c_uint = PARAM_INT;

static PARAMS: Ffi<[param_export_t; 44]> = Ffi([
    param(c"node_url", S, p_node_url),
    param(c"emercoin_conf", S, p_emercoin_conf),
    param(c"rpc_user", S, p_rpc_user),
    param(c"rpc_password", S, p_rpc_password),
    param(c"cookie_file", S, p_cookie_file),
    param(c"timeout_ms", I, p_timeout_ms),
    param(c"lookup_timeout_ms", I, p_lookup_timeout_ms),
    param(c"cache_size", I, p_cache_size),
    param(c"ttl_cap", I, p_ttl_cap),
    param(c"negative_ttl", I, p_negative_ttl),
    param(c"stale_ttl", I, p_stale_ttl),
    param(c"verifiers", S, p_verifiers),
    param(c"require_signature", I, p_require_signature),
    param(c"privatenumer_layout", I, p_privatenumer_layout),
    param(c"max_records", I, p_max_records),
    param(c"on_node_failure", S, p_on_node_failure),
    // Numbers may also be written as strings ("500").
    param(c"timeout_ms", S, p_timeout_ms),
    param(c"lookup_timeout_ms", S, p_lookup_timeout_ms),
    param(c"cache_size", S, p_cache_size),
    param(c"ttl_cap", S, p_ttl_cap),
    param(c"negative_ttl", S, p_negative_ttl),
    param(c"stale_ttl", S, p_stale_ttl),
    param(c"max_records", S, p_max_records),
    param(c"randpay_role", S, p_randpay_role),
    param(c"randpay_wallet", S, p_randpay_wallet),
    param(c"randpay_ledger", S, p_randpay_ledger),
    param(c"randpay_tariff", S, p_randpay_tariff),
    param(c"randpay_max_price", S, p_randpay_max_price),
    param(c"randpay_max_risk", I, p_randpay_max_risk),
    param(c"randpay_max_risk", S, p_randpay_max_risk),
    param(c"randpay_max_ticket", S, p_randpay_max_ticket),
    param(c"randpay_side_channel", S, p_randpay_side_channel),
    param(c"randpay_side_peers", S, p_randpay_side_peers),
    param(c"randpay_payee_url", S, p_randpay_payee_url),
    param(c"randpay_side_timeout_ms", I, p_randpay_side_timeout_ms),
    param(c"randpay_side_timeout_ms", S, p_randpay_side_timeout_ms),
    param(c"trunk_config", S, p_trunk_config),
    param(c"hooks_script", S, p_hooks_script),
    param(c"hooks_instructions", I, p_hooks_instructions),
    param(c"hooks_instructions", S, p_hooks_instructions),
    param(c"hooks_memory_kb", I, p_hooks_memory_kb),
    param(c"hooks_memory_kb", S, p_hooks_memory_kb),
    param(c"hooks_allow", S, p_hooks_allow),
    param_export_t { name: ptr::null(), type_: 0, param_pointer: ptr::null_mut() },
]);

// ---- script functions ------------------------------------------------------------

const ROUTES: c_uint = REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE;

const fn cmd(name: &'static CStr, f: *const c_void, n: c_int, fixup: Option<ffi::fixup_function>, free: Option<ffi::fixup_function>) -> cmd_export_t {
    cmd_export_t { name: name.as_ptr(), function: f, param_no: n, fixup, free_fixup: free, flags: ROUTES }
}

static CMDS: Ffi<[cmd_export_t; 15]> = Ffi([
    cmd(c"emc_enum_query", script::w_enum_query0 as *const c_void, 0, None, None),
    cmd(c"emc_enum_query", script::w_enum_query1 as *const c_void, 1, Some(ffi::fixup_spve_null), Some(ffi::fixup_free_spve_null)),
    cmd(c"emc_enum_query", script::w_enum_query2 as *const c_void, 2, Some(ffi::fixup_spve_spve), Some(ffi::fixup_free_spve_spve)),
    cmd(c"emc_enum_pv_query", script::w_enum_pv_query1 as *const c_void, 1, Some(ffi::fixup_spve_null), Some(ffi::fixup_free_spve_null)),
    cmd(c"emc_enum_pv_query", script::w_enum_pv_query2 as *const c_void, 2, Some(ffi::fixup_spve_spve), Some(ffi::fixup_free_spve_spve)),
    cmd(c"emc_enum_pv_query", script::w_enum_pv_query3 as *const c_void, 3, Some(ffi::fixup_spve_all), Some(ffi::fixup_free_spve_all)),
    cmd(c"emc_is_from_user_enum", script::w_is_from_user_enum0 as *const c_void, 0, None, None),
    cmd(c"emc_is_from_user_enum", script::w_is_from_user_enum1 as *const c_void, 1, Some(ffi::fixup_spve_null), Some(ffi::fixup_free_spve_null)),
    cmd(c"emc_is_from_user_enum", script::w_is_from_user_enum2 as *const c_void, 2, Some(ffi::fixup_spve_spve), Some(ffi::fixup_free_spve_spve)),
    cmd(c"emc_nvs_get", script::w_nvs_get as *const c_void, 2, Some(script::fixup_nvs_get), Some(script::fixup_free_nvs_get)),
    cmd(c"randpay_require", randpay::script::w_require0 as *const c_void, 0, None, None),
    cmd(c"randpay_require", randpay::script::w_require1 as *const c_void, 1, Some(ffi::fixup_spve_null), Some(ffi::fixup_free_spve_null)),
    cmd(c"randpay_pay", randpay::script::w_pay as *const c_void, 0, None, None),
    cmd(c"emc_trunk_select", script::w_trunk_select as *const c_void, 2, Some(script::fixup_nvs_get), Some(script::fixup_free_nvs_get)),
    cmd_export_t { name: ptr::null(), function: ptr::null(), param_no: 0, fixup: None, free_fixup: None, flags: 0 },
]);

// ---- KEMI ----------------------------------------------------------------------

const fn kemi(fname: &'static CStr, rtype: c_int, func: *const c_void, ptypes: [c_int; 6]) -> sr_kemi_t {
    sr_kemi_t { mname: str_t::lit(MOD_NAME), fname: str_t::lit(fname), rtype, func, ptypes }
}
const N: c_int = SR_KEMIP_NONE;
const ST: c_int = SR_KEMIP_STR;

static KEMI: Ffi<[sr_kemi_t; 16]> = Ffi([
    kemi(c"emc_enum_query", SR_KEMIP_INT, script::ki_enum_query as *const c_void, [N; 6]),
    kemi(c"emc_enum_query_suffix", SR_KEMIP_INT, script::ki_enum_query_suffix as *const c_void, [ST, N, N, N, N, N]),
    kemi(c"emc_enum_query_suffix_service", SR_KEMIP_INT, script::ki_enum_query_suffix_service as *const c_void, [ST, ST, N, N, N, N]),
    kemi(c"emc_enum_pv_query", SR_KEMIP_INT, script::ki_enum_pv_query as *const c_void, [ST, N, N, N, N, N]),
    kemi(c"emc_enum_pv_query_suffix", SR_KEMIP_INT, script::ki_enum_pv_query_suffix as *const c_void, [ST, ST, N, N, N, N]),
    kemi(c"emc_enum_pv_query_suffix_service", SR_KEMIP_INT, script::ki_enum_pv_query_suffix_service as *const c_void, [ST, ST, ST, N, N, N]),
    kemi(c"emc_is_from_user_enum", SR_KEMIP_INT, script::ki_is_from_user_enum as *const c_void, [N; 6]),
    kemi(c"emc_is_from_user_enum_suffix", SR_KEMIP_INT, script::ki_is_from_user_enum_suffix as *const c_void, [ST, N, N, N, N, N]),
    kemi(c"emc_is_from_user_enum_suffix_service", SR_KEMIP_INT, script::ki_is_from_user_enum_suffix_service as *const c_void, [ST, ST, N, N, N, N]),
    kemi(c"emc_nvs_get", SR_KEMIP_INT, script::ki_nvs_get as *const c_void, [ST, ST, N, N, N, N]),
    kemi(c"emc_nvs_value", SR_KEMIP_XVAL, script::ki_nvs_value as *const c_void, [ST, N, N, N, N, N]),
    kemi(c"randpay_require", SR_KEMIP_INT, randpay::script::ki_require as *const c_void, [N; 6]),
    kemi(c"randpay_require_tariff", SR_KEMIP_INT, randpay::script::ki_require_tariff as *const c_void, [ST, N, N, N, N, N]),
    kemi(c"randpay_pay", SR_KEMIP_INT, randpay::script::ki_pay as *const c_void, [N; 6]),
    kemi(c"emc_trunk_select", SR_KEMIP_INT, script::ki_trunk_select as *const c_void, [ST, ST, N, N, N, N]),
    sr_kemi_t { mname: str_t::NULL, fname: str_t::NULL, rtype: 0, func: ptr::null(), ptypes: [N; 6] },
]);

// ---- RPC -------------------------------------------------------------------------

static DOC_STATUS: Ffi<[*const c_char; 2]> = Ffi([c"Node reachability, lookups, cache hit rate, errors".as_ptr(), ptr::null()]);
static DOC_LOOKUP: Ffi<[*const c_char; 2]> = Ffi([c"Resolve a number: privateness.lookup +15551234567".as_ptr(), ptr::null()]);
static DOC_FLUSH: Ffi<[*const c_char; 2]> = Ffi([c"Empty the ENUM cache of every process".as_ptr(), ptr::null()]);

static DOC_RP_CALLS: Ffi<[*const c_char; 2]> = Ffi([c"RANDPAY calls in progress: Call-ID, number, tariff, intervals paid, seconds since answer".as_ptr(), ptr::null()]);
static DOC_RP_LEDGER: Ffi<[*const c_char; 2]> =
    Ffi([c"RANDPAY ledger: randpay.ledger [call-id] (default: the 50 most recent calls)".as_ptr(), ptr::null()]);

static DOC_RP_STOP: Ffi<[*const c_char; 2]> =
    Ffi([c"Payer: pay nothing more for a call (randpay.stop <call-id>) or for any call until restart (randpay.stop all)".as_ptr(), ptr::null()]);

static DOC_TRUNKS: Ffi<[*const c_char; 2]> = Ffi([
    c"Skywire trunks (trunk_config): up or down, carrier, sessions, failures, the last failure, SIP and RTP each way, RTP dropped".as_ptr(),
    ptr::null(),
]);

static DOC_RELOAD_HOOKS: Ffi<[*const c_char; 2]> =
    Ffi([c"Reload the Lua hooks script (hooks_script) in every process; a script that does not compile keeps the running one".as_ptr(), ptr::null()]);

static RPC: Ffi<[rpc_export_t; 9]> = Ffi([
    rpc_export_t { name: c"privateness.status".as_ptr(), function: Some(rpc::rpc_status), doc_str: DOC_STATUS.0.as_ptr(), flags: 0 },
    rpc_export_t { name: c"privateness.lookup".as_ptr(), function: Some(rpc::rpc_lookup), doc_str: DOC_LOOKUP.0.as_ptr(), flags: 0 },
    rpc_export_t { name: c"privateness.cache_flush".as_ptr(), function: Some(rpc::rpc_cache_flush), doc_str: DOC_FLUSH.0.as_ptr(), flags: 0 },
    rpc_export_t { name: c"randpay.calls".as_ptr(), function: Some(rpc::rpc_randpay_calls), doc_str: DOC_RP_CALLS.0.as_ptr(), flags: 0 },
    rpc_export_t { name: c"randpay.ledger".as_ptr(), function: Some(rpc::rpc_randpay_ledger), doc_str: DOC_RP_LEDGER.0.as_ptr(), flags: 0 },
    rpc_export_t { name: c"randpay.stop".as_ptr(), function: Some(rpc::rpc_randpay_stop), doc_str: DOC_RP_STOP.0.as_ptr(), flags: 0 },
    rpc_export_t { name: c"privateness.reload_hooks".as_ptr(), function: Some(rpc::rpc_reload_hooks), doc_str: DOC_RELOAD_HOOKS.0.as_ptr(), flags: 0 },
    rpc_export_t { name: c"privateness.trunks".as_ptr(), function: Some(rpc::rpc_trunks), doc_str: DOC_TRUNKS.0.as_ptr(), flags: 0 },
    rpc_export_t { name: ptr::null(), function: None, doc_str: ptr::null(), flags: 0 },
]);

// ---- life cycle ------------------------------------------------------------------

/// Right after dlopen and the version check: register the KEMI exports.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mod_register(_path: *mut c_char, _dlflags: *mut c_int, _r1: *mut c_void, _r2: *mut c_void) -> c_int {
    fence("mod_register", -1, || unsafe { if ffi::sr_kemi_modules_add(KEMI.0.as_ptr()) < 0 { -1 } else { 0 } })
}

/// Main process, after the cfg is parsed, before any fork: check the settings,
/// resolve pseudo-variables, allocate shared counters. No threads, no sockets.
unsafe extern "C" fn mod_init() -> c_int {
    fence("mod_init", -1, || {
        log::install_tracing();
        let settings = SETTINGS.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let node = match settings.node_config() {
            Ok(n) => n,
            Err(e) => {
                kerr!("{e} (set modparam node_url/rpc_user/rpc_password, cookie_file or emercoin_conf)");
                return -1;
            }
        };
        let resolver = match settings.resolver_config() {
            Ok(r) => r,
            Err(e) => {
                kerr!("{e}");
                return -1;
            }
        };
        if let Err(e) = node.endpoint() {
            kerr!("{e}");
            return -1;
        }
        let (Some(ru), Some(fu)) = (host::PvSpec::resolve("$rU"), host::PvSpec::resolve("$fU")) else {
            kerr!("cannot resolve $rU/$fU: loadmodule \"pv.so\" is needed");
            return -1;
        };
        let _ = script::PV_RURI_USER.set(ru);
        let _ = script::PV_FROM_USER.set(fu);
        if !worker::init_shared_stats() {
            kerr!("cannot allocate shared memory for statistics");
            return -1;
        }
        kinfo!(
            "node {} ({:?}), verifiers {:?}, lookup deadline {} ms, cache {} numbers per process, on node failure: {}",
            node.url,
            node.credentials,
            resolver.trust.verifiers,
            resolver.lookup_timeout.as_millis(),
            resolver.cache_capacity,
            if resolver.serve_stale { "stale answers" } else { "fail" }
        );
        let _ = CONFIG.set((node, resolver));
        if let Err(e) = randpay::init() {
            kerr!("{e}");
            return -1;
        }
        if let Err(e) = hooks::init() {
            kerr!("{e}");
            return -1;
        }
        if let Err(e) = trunk::init() {
            kerr!("{e}");
            return -1;
        }
        0
    })
}

/// After fork. SIP workers (rank > 0) build their runtime and resolver now; main
/// (PROC_INIT, PROC_MAIN) never does; other processes build theirs on first use.
unsafe extern "C" fn child_init(rank: c_int) -> c_int {
    fence("child_init", -1, || {
        if rank == ffi::PROC_MAIN {
            return match randpay::fork_process().and_then(|()| trunk::fork()) {
                Ok(()) => 0,
                Err(e) => {
                    kerr!("{e}");
                    -1
                }
            };
        }
        if rank == ffi::PROC_INIT || rank < 0 {
            return 0;
        }
        match worker::with_worker(|_| ()) {
            Some(()) => 0,
            None => -1,
        }
    })
}

unsafe extern "C" fn mod_destroy() {}

#[unsafe(no_mangle)]
pub static exports: Ffi<module_exports> = Ffi(module_exports {
    name: MOD_NAME.as_ptr(),
    dlflags: 0,
    cmds: CMDS.0.as_ptr(),
    params: PARAMS.0.as_ptr(),
    rpc_methods: RPC.0.as_ptr(),
    pv_items: ptr::null(),
    response_f: None,
    init_mod_f: Some(mod_init),
    init_child_f: Some(child_init),
    destroy_mod_f: Some(mod_destroy),
});
