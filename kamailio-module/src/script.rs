//! The script functions, for the native cfg and for KEMI (Lua & co.), under the
//! same names. Each entry point is fenced against panics and returns:
//!
//! | code | meaning |
//! |---|---|
//! | 1 | found: the R-URI was rewritten (and branches appended), or the test is true |
//! | -1 | not found: no trusted record, no usable route, or the number is not E.164 |
//! | -2 | the node failed or the lookup passed its deadline, and nothing usable was cached |
//! | -3 | module error: bad parameter (e.g. an unknown suffix) or module not configured |
//! | -4 | rejected by the `on_enum` Lua hook: `$avp(emc_reject_code)` and `$avp(emc_reject_reason)` say how to answer |
//!
//! Never 0, which would stop the script.

use std::ffi::{c_char, c_int, c_void};
use std::sync::{Mutex, OnceLock};

use ness_core::enumer::E164;
use ness_core::enumer::route::targets;

use crate::ffi::{self, sip_msg, str_t};
use crate::host::{self, PvSpec};
use crate::log::{fence, kdbg, kerr, kwarn};
use crate::worker::with_worker;

pub const FOUND: c_int = 1;
pub const NOT_FOUND: c_int = -1;
pub const NODE_FAILURE: c_int = -2;
pub const MODULE_ERROR: c_int = -3;
pub const HOOK_REJECT: c_int = -4;

/// `$rU` and `$fU`, resolved in mod_init.
pub static PV_RURI_USER: OnceLock<PvSpec> = OnceLock::new();
pub static PV_FROM_USER: OnceLock<PvSpec> = OnceLock::new();

/// The suffix argument exists for drop-in compatibility with `enum_query()`.
/// Records always come from NVS names `enum:<digits>:<n>`, so only the suffixes
/// that mean that are accepted.
fn suffix_ok(suffix: &[u8]) -> bool {
    matches!(
        suffix.to_ascii_lowercase().as_slice(),
        b"" | b"e164.arpa" | b"e164.arpa." | b"enum" | b"enum."
    )
}

fn service_of(service: Option<&[u8]>) -> String {
    match service.map(|s| String::from_utf8_lossy(s).trim().to_owned()) {
        Some(s) if !s.is_empty() => s,
        _ => "sip".to_owned(),
    }
}

/// Parse the number; count and log what is not one.
fn number_of(text: &[u8]) -> Option<E164> {
    let parsed = std::str::from_utf8(text).ok().and_then(|t| E164::parse(t).ok());
    if parsed.is_none() {
        if let Some(s) = crate::worker::stats() {
            s.invalid_numbers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        kdbg!("not an E.164 number: {:?}", String::from_utf8_lossy(&text[..text.len().min(64)]));
    }
    parsed
}

/// Resolve `number` and route the request to the targets.
///
/// # Safety
/// `msg` is the message of the current call.
unsafe fn enum_route(msg: *mut sip_msg, number: &[u8], suffix: Option<&[u8]>, service: Option<&[u8]>) -> c_int {
    if let Some(sfx) = suffix
        && !suffix_ok(sfx) {
            kerr!(
                "emc_enum_query: suffix {:?} is not supported; records are read from NVS names enum:<digits>:<n> (use \"\", \"e164.arpa.\" or \"enum.\")",
                String::from_utf8_lossy(sfx)
            );
            return MODULE_ERROR;
        }
    let service = service_of(service);
    let Some(number) = number_of(number) else { return NOT_FOUND };
    let Some(result) = with_worker(|w| w.lookup(&number)) else { return MODULE_ERROR };
    let looked = match result {
        Ok(l) => l,
        Err(e) => {
            kwarn!("ENUM lookup failed: {e}");
            return NODE_FAILURE;
        }
    };
    let mut found = targets(&looked.answer, &service);
    // The on_enum hook may reorder, drop, add or reject; on any failure of the
    // script the routes stay as they are.
    // SAFETY: the message of the current call.
    let caller = unsafe { from_user(msg) };
    match crate::hooks::on_enum(&number, &caller, &service, &found) {
        crate::hooks::Outcome::Keep => {}
        crate::hooks::Outcome::Route(routes) => found = routes,
        crate::hooks::Outcome::Reject(code, reason) => {
            // SAFETY: the message of the current call.
            if !unsafe { crate::hooks::set_reject(msg, code, &reason) } {
                return MODULE_ERROR;
            }
            kdbg!("{number}: rejected by on_enum with {code} {reason}");
            return HOOK_REJECT;
        }
    }
    let Some((first, rest)) = found.split_first() else {
        kdbg!("{number}: no route for service {service}");
        return NOT_FOUND;
    };
    // SAFETY: the message of the current call.
    if !unsafe { host::rewrite_ruri(msg, &first.uri, first.q) } {
        kerr!("cannot rewrite the R-URI");
        return MODULE_ERROR;
    }
    for t in rest {
        // SAFETY: as above.
        if !unsafe { host::append_branch(msg, &t.uri, t.q) } {
            kwarn!("cannot append a branch (too many branches?); routing to the first {} target(s)", found.len());
            break;
        }
    }
    kdbg!("{number}: routed to {} target(s), first {}", found.len(), first.uri);
    FOUND
}

/// Is `number` in ENUM (trusted records with a route for the service)?
fn enum_test(number: &[u8], suffix: Option<&[u8]>, service: Option<&[u8]>) -> c_int {
    if suffix.is_some_and(|s| !suffix_ok(s)) {
        kerr!("emc_is_from_user_enum: unsupported suffix");
        return MODULE_ERROR;
    }
    let service = service_of(service);
    let Some(number) = number_of(number) else { return NOT_FOUND };
    match with_worker(|w| w.lookup(&number)) {
        None => MODULE_ERROR,
        Some(Ok(l)) if !targets(&l.answer, &service).is_empty() => FOUND,
        Some(Ok(_)) => NOT_FOUND,
        Some(Err(e)) => {
            kwarn!("ENUM lookup failed: {e}");
            NODE_FAILURE
        }
    }
}

/// Read NVS `name` into `dst`.
///
/// # Safety
/// `msg` is the message of the current call.
unsafe fn nvs_get(msg: *mut sip_msg, name: &[u8], dst: PvSpec) -> c_int {
    let name = String::from_utf8_lossy(name).into_owned();
    if name.is_empty() || name.len() > 512 {
        kerr!("emc_nvs_get: an NVS name has 1 to 512 bytes");
        return MODULE_ERROR;
    }
    match with_worker(|w| w.name_show(&name)) {
        None => MODULE_ERROR,
        Some(Ok(Some(entry))) => {
            // SAFETY: the message of the current call.
            if unsafe { dst.set(msg, entry.value.as_bytes()) } { FOUND } else { MODULE_ERROR }
        }
        Some(Ok(None)) => NOT_FOUND,
        Some(Err(e)) => {
            kwarn!("emc_nvs_get: {e}");
            NODE_FAILURE
        }
    }
}

// ---- native cfg ----------------------------------------------------------

/// # Safety
/// Called by the core with the current message.
unsafe fn ruri_user(msg: *mut sip_msg) -> Vec<u8> {
    // SAFETY: the message of the current call.
    PV_RURI_USER.get().and_then(|pv| unsafe { pv.get(msg) }).unwrap_or_default()
}

pub(crate) unsafe fn from_user(msg: *mut sip_msg) -> Vec<u8> {
    // SAFETY: the message of the current call.
    PV_FROM_USER.get().and_then(|pv| unsafe { pv.get(msg) }).unwrap_or_default()
}

macro_rules! param {
    ($msg:expr, $p:expr) => {{
        // SAFETY: the parameter was fixed up by a fixup_spve_* fixup.
        #[allow(unused_unsafe)]
        let value = unsafe { host::fparam_str($msg, $p) };
        match value {
            Some(v) => v,
            None => {
                kerr!("cannot evaluate a parameter");
                return MODULE_ERROR;
            }
        }
    }};
}

pub unsafe extern "C" fn w_enum_query0(msg: *mut sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    fence("emc_enum_query", MODULE_ERROR, || unsafe { enum_route(msg, &ruri_user(msg), None, None) })
}

pub unsafe extern "C" fn w_enum_query1(msg: *mut sip_msg, p1: *mut c_char, _: *mut c_char) -> c_int {
    fence("emc_enum_query", MODULE_ERROR, || unsafe {
        let suffix = param!(msg, p1);
        enum_route(msg, &ruri_user(msg), Some(&suffix), None)
    })
}

pub unsafe extern "C" fn w_enum_query2(msg: *mut sip_msg, p1: *mut c_char, p2: *mut c_char) -> c_int {
    fence("emc_enum_query", MODULE_ERROR, || unsafe {
        let (suffix, service) = (param!(msg, p1), param!(msg, p2));
        enum_route(msg, &ruri_user(msg), Some(&suffix), Some(&service))
    })
}

pub unsafe extern "C" fn w_enum_pv_query1(msg: *mut sip_msg, p1: *mut c_char, _: *mut c_char) -> c_int {
    fence("emc_enum_pv_query", MODULE_ERROR, || unsafe {
        let number = param!(msg, p1);
        enum_route(msg, &number, None, None)
    })
}

pub unsafe extern "C" fn w_enum_pv_query2(msg: *mut sip_msg, p1: *mut c_char, p2: *mut c_char) -> c_int {
    fence("emc_enum_pv_query", MODULE_ERROR, || unsafe {
        let (number, suffix) = (param!(msg, p1), param!(msg, p2));
        enum_route(msg, &number, Some(&suffix), None)
    })
}

pub unsafe extern "C" fn w_enum_pv_query3(msg: *mut sip_msg, p1: *mut c_char, p2: *mut c_char, p3: *mut c_char) -> c_int {
    fence("emc_enum_pv_query", MODULE_ERROR, || unsafe {
        let (number, suffix, service) = (param!(msg, p1), param!(msg, p2), param!(msg, p3));
        enum_route(msg, &number, Some(&suffix), Some(&service))
    })
}

pub unsafe extern "C" fn w_is_from_user_enum0(msg: *mut sip_msg, _: *mut c_char, _: *mut c_char) -> c_int {
    fence("emc_is_from_user_enum", MODULE_ERROR, || enum_test(&unsafe { from_user(msg) }, None, None))
}

pub unsafe extern "C" fn w_is_from_user_enum1(msg: *mut sip_msg, p1: *mut c_char, _: *mut c_char) -> c_int {
    fence("emc_is_from_user_enum", MODULE_ERROR, || {
        let suffix = param!(msg, p1);
        enum_test(&unsafe { from_user(msg) }, Some(&suffix), None)
    })
}

pub unsafe extern "C" fn w_is_from_user_enum2(msg: *mut sip_msg, p1: *mut c_char, p2: *mut c_char) -> c_int {
    fence("emc_is_from_user_enum", MODULE_ERROR, || {
        let (suffix, service) = (param!(msg, p1), param!(msg, p2));
        enum_test(&unsafe { from_user(msg) }, Some(&suffix), Some(&service))
    })
}

pub unsafe extern "C" fn w_nvs_get(msg: *mut sip_msg, p1: *mut c_char, p2: *mut c_char) -> c_int {
    fence("emc_nvs_get", MODULE_ERROR, || unsafe {
        let name = param!(msg, p1);
        let Some(dst) = PvSpec::from_raw(p2 as *mut ffi::pv_spec_t) else { return MODULE_ERROR };
        nvs_get(msg, &name, dst)
    })
}

/// Fixup of `emc_nvs_get(name, $var(dst))`: the name may hold pseudo-variables,
/// the destination must be a pseudo-variable (resolved once, here).
pub unsafe extern "C" fn fixup_nvs_get(param: *mut *mut c_void, param_no: c_int) -> c_int {
    fence("emc_nvs_get fixup", -1, || unsafe {
        match param_no {
            1 => ffi::fixup_spve_null(param, 1),
            2 => {
                let text = std::ffi::CStr::from_ptr(*param as *const c_char).to_string_lossy().into_owned();
                match PvSpec::resolve(text.trim()) {
                    Some(sp) => {
                        *param = sp.as_raw() as *mut c_void;
                        0
                    }
                    None => {
                        kerr!("emc_nvs_get: {text:?} is not a pseudo-variable (use e.g. $var(value))");
                        -1
                    }
                }
            }
            _ => -1,
        }
    })
}

pub unsafe extern "C" fn fixup_free_nvs_get(param: *mut *mut c_void, param_no: c_int) -> c_int {
    // SAFETY: the first parameter was fixed up by fixup_spve_null.
    if param_no == 1 { unsafe { ffi::fixup_free_spve_null(param, 1) } } else { 0 }
}

// ---- KEMI ----------------------------------------------------------------

/// # Safety
/// `s` is null or a `str` valid during the call.
unsafe fn arg(s: *mut str_t) -> Vec<u8> {
    if s.is_null() { Vec::new() } else { unsafe { (*s).as_bytes() }.to_vec() }
}

pub unsafe extern "C" fn ki_enum_query(msg: *mut sip_msg) -> c_int {
    unsafe { w_enum_query0(msg, std::ptr::null_mut(), std::ptr::null_mut()) }
}

pub unsafe extern "C" fn ki_enum_query_suffix(msg: *mut sip_msg, suffix: *mut str_t) -> c_int {
    fence("emc_enum_query_suffix", MODULE_ERROR, || unsafe { enum_route(msg, &ruri_user(msg), Some(&arg(suffix)), None) })
}

pub unsafe extern "C" fn ki_enum_query_suffix_service(msg: *mut sip_msg, suffix: *mut str_t, service: *mut str_t) -> c_int {
    fence("emc_enum_query_suffix_service", MODULE_ERROR, || unsafe {
        enum_route(msg, &ruri_user(msg), Some(&arg(suffix)), Some(&arg(service)))
    })
}

pub unsafe extern "C" fn ki_enum_pv_query(msg: *mut sip_msg, number: *mut str_t) -> c_int {
    fence("emc_enum_pv_query", MODULE_ERROR, || unsafe { enum_route(msg, &arg(number), None, None) })
}

pub unsafe extern "C" fn ki_enum_pv_query_suffix(msg: *mut sip_msg, number: *mut str_t, suffix: *mut str_t) -> c_int {
    fence("emc_enum_pv_query_suffix", MODULE_ERROR, || unsafe { enum_route(msg, &arg(number), Some(&arg(suffix)), None) })
}

pub unsafe extern "C" fn ki_enum_pv_query_suffix_service(
    msg: *mut sip_msg,
    number: *mut str_t,
    suffix: *mut str_t,
    service: *mut str_t,
) -> c_int {
    fence("emc_enum_pv_query_suffix_service", MODULE_ERROR, || unsafe {
        enum_route(msg, &arg(number), Some(&arg(suffix)), Some(&arg(service)))
    })
}

pub unsafe extern "C" fn ki_is_from_user_enum(msg: *mut sip_msg) -> c_int {
    unsafe { w_is_from_user_enum0(msg, std::ptr::null_mut(), std::ptr::null_mut()) }
}

pub unsafe extern "C" fn ki_is_from_user_enum_suffix(msg: *mut sip_msg, suffix: *mut str_t) -> c_int {
    fence("emc_is_from_user_enum_suffix", MODULE_ERROR, || unsafe { enum_test(&from_user(msg), Some(&arg(suffix)), None) })
}

pub unsafe extern "C" fn ki_is_from_user_enum_suffix_service(msg: *mut sip_msg, suffix: *mut str_t, service: *mut str_t) -> c_int {
    fence("emc_is_from_user_enum_suffix_service", MODULE_ERROR, || unsafe {
        enum_test(&from_user(msg), Some(&arg(suffix)), Some(&arg(service)))
    })
}

/// The pseudo-variable a KEMI script named for `function`'s result, or None
/// (logged) when the name is not one.
///
/// # Safety
/// `pv` is a KEMI string argument of the current call.
unsafe fn kemi_destination(function: &str, pv: *mut str_t) -> Option<PvSpec> {
    // SAFETY: as the caller promises.
    let pv_name = String::from_utf8_lossy(&unsafe { arg(pv) }).into_owned();
    let dst = PvSpec::resolve(pv_name.trim());
    if dst.is_none() {
        kerr!("{function}: {pv_name:?} is not a pseudo-variable");
    }
    dst
}

pub unsafe extern "C" fn ki_nvs_get(msg: *mut sip_msg, name: *mut str_t, pv: *mut str_t) -> c_int {
    fence("emc_nvs_get", MODULE_ERROR, || unsafe {
        let Some(dst) = kemi_destination("emc_nvs_get", pv) else { return MODULE_ERROR };
        nvs_get(msg, &arg(name), dst)
    })
}

/// `emc_trunk_select(number, $var(dst))`: the Lua `on_trunk` hook picks one of
/// the configured Skywire trunks (trunk_config) for `number`; `dst` gets
/// `sip:<the peer's address>:<its first SIP port>`, the address the trunk's
/// relay owns. 1: chosen; -1: no trunks, no hook, nil, or a failing script
/// (logged), so the script routes as it would without; -3: bad arguments.
///
/// # Safety
/// `msg` is the message of the current call.
unsafe fn trunk_select(msg: *mut sip_msg, number: &[u8], dst: PvSpec) -> c_int {
    let number = String::from_utf8_lossy(number).into_owned();
    // SAFETY: the message of the current call.
    let caller = String::from_utf8_lossy(&unsafe { from_user(msg) }).into_owned();
    match crate::trunk::choose(&number, &caller) {
        None => NOT_FOUND,
        // SAFETY: as above.
        Some(uri) => if unsafe { dst.set(msg, uri.as_bytes()) } { FOUND } else { MODULE_ERROR },
    }
}

pub unsafe extern "C" fn w_trunk_select(msg: *mut sip_msg, p1: *mut c_char, p2: *mut c_char) -> c_int {
    fence("emc_trunk_select", MODULE_ERROR, || unsafe {
        let number = param!(msg, p1);
        let Some(dst) = PvSpec::from_raw(p2 as *mut ffi::pv_spec_t) else { return MODULE_ERROR };
        trunk_select(msg, &number, dst)
    })
}

pub unsafe extern "C" fn ki_trunk_select(msg: *mut sip_msg, number: *mut str_t, pv: *mut str_t) -> c_int {
    fence("emc_trunk_select", MODULE_ERROR, || unsafe {
        let Some(dst) = kemi_destination("emc_trunk_select", pv) else { return MODULE_ERROR };
        trunk_select(msg, &arg(number), dst)
    })
}

/// Per-process buffer for the string returned to the KEMI engine (it copies the
/// value right after the call; Kamailio processes are single-threaded).
static XVAL_BUF: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static mut XVAL: ffi::sr_kemi_xval_t = ffi::sr_kemi_xval_t { vtype: ffi::SR_KEMIP_NULL, v: str_t::NULL };

/// `emc_nvs_value(name)`: the value as a string, or null when missing or on error.
pub unsafe extern "C" fn ki_nvs_value(_msg: *mut sip_msg, name: *mut str_t) -> *mut ffi::sr_kemi_xval_t {
    let x = &raw mut XVAL;
    fence("emc_nvs_value", x, || unsafe {
        let name = String::from_utf8_lossy(&arg(name)).into_owned();
        (*x).vtype = ffi::SR_KEMIP_NULL;
        (*x).v = str_t::NULL;
        if let Some(Ok(Some(entry))) = with_worker(|w| w.name_show(&name)) {
            let mut buf = XVAL_BUF.lock().unwrap_or_else(|p| p.into_inner());
            buf.clear();
            buf.extend_from_slice(entry.value.as_bytes());
            (*x).vtype = ffi::SR_KEMIP_STR;
            (*x).v = str_t::borrow(&buf);
        }
        x
    })
}
