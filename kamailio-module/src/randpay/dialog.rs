//! The dialog, tm and sl interfaces RANDPAY metering uses (Kamailio 5.6, x86_64;
//! the facts and how they were checked are in docs/kamailio-dialog-notes.md):
//! the layouts, binding them once in mod_init, and the handful of operations the
//! metering needs — follow a dialog, send the caller leg an in-dialog INFO, move
//! the dialog's timeout, end both legs, answer with an extra header, add a header
//! to a forwarded request.
//!
//! Nothing here keeps a `dlg_cell*`: cells are found again by (h_entry, h_id)
//! with `dlg_lookup`, and every reference taken is released.
#![allow(non_camel_case_types)]
// Each transmute lands in a typed field of `Sip` or `Dialogs`: the field is the annotation.
#![allow(clippy::missing_transmute_annotations)]

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::ptr;
use std::sync::OnceLock;

use crate::ffi::{sip_msg, sr_kemi_t, str_t};

/// `struct dlg_cell`: opaque, read through the offsets below.
#[repr(C)]
pub struct dlg_cell {
    _p: [u8; 0],
}

/// `struct dlg_cb_params` (dlg_cb.h).
#[repr(C)]
pub struct dlg_cb_params {
    pub req: *mut sip_msg,
    pub rpl: *mut sip_msg,
    pub direction: c_uint,
    pub dlg_data: *mut c_void,
    pub param: *mut *mut c_void,
}

pub type dialog_cb = unsafe extern "C" fn(*mut dlg_cell, c_int, *mut dlg_cb_params);
type param_free_cb = unsafe extern "C" fn(*mut c_void);

/// `struct dlg_binds` (dlg_load.h, 5.6.2 and later).
#[repr(C)]
struct dlg_binds {
    register_dlgcb: Option<unsafe extern "C" fn(*mut dlg_cell, c_int, dialog_cb, *mut c_void, Option<param_free_cb>) -> c_int>,
    terminate_dlg: Option<unsafe extern "C" fn(*mut dlg_cell, *mut str_t) -> c_int>,
    set_dlg_var: *const c_void,
    get_dlg_varref: *const c_void,
    get_dlg_varval: *const c_void,
    get_dlg_vardup: *const c_void,
    get_dlg_varstatus: *const c_void,
    get_dlg: Option<unsafe extern "C" fn(*mut sip_msg) -> *mut dlg_cell>,
    release_dlg: Option<unsafe extern "C" fn(*mut dlg_cell)>,
}

/// `struct tmcb_params` (t_hooks.h).
#[repr(C)]
pub struct tmcb_params {
    pub req: *mut sip_msg,
    pub rpl: *mut sip_msg,
    pub param: *mut *mut c_void,
    pub code: c_int,
    pub flags: u16,
    pub branch: u16,
    pub t_rbuf: *mut c_void,
    pub dst: *mut c_void,
    pub send_buf: str_t,
}

pub type transaction_cb = unsafe extern "C" fn(*mut c_void, c_int, *mut tmcb_params);

/// `uac_req_t` (tm/uac.h).
#[repr(C)]
struct uac_req_t {
    method: *mut str_t,
    headers: *mut str_t,
    body: *mut str_t,
    ssock: *mut str_t,
    ssockname: *mut str_t,
    dialog: *mut dlg_t,
    cb_flags: c_int,
    cb: Option<transaction_cb>,
    cbp: *mut c_void,
    callid: *mut str_t,
}

#[repr(C)]
struct dlg_seq_t {
    value: c_uint,
    is_set: u8,
}

/// `dlg_t` (tm/dlg.h), built by the dialog module for one leg.
#[repr(C)]
struct dlg_t {
    call_id: str_t,
    rem_tag: str_t,
    loc_tag: str_t,
    loc_seq: dlg_seq_t,
    rem_seq: dlg_seq_t,
    loc_uri: str_t,
    rem_uri: str_t,
    rem_target: str_t,
    dst_uri: str_t,
    loc_dname: str_t,
    rem_dname: str_t,
    secure: u8,
    state: c_int,
    route_set: *mut c_void,
    hooks: [*mut c_void; 8],
    send_sock: *mut c_void,
}

/// `sl_api_t` (sl.h).
#[repr(C)]
struct sl_api_t {
    zreply: *const c_void,
    sreply: *const c_void,
    dreply: *const c_void,
    freply: Option<unsafe extern "C" fn(*mut sip_msg, c_int, *mut str_t) -> c_int>,
    get_reply_totag: *const c_void,
    register_cb: *const c_void,
}

/// The prefix of `struct sr_module` (path, dlopen handle).
#[repr(C)]
struct sr_module_prefix {
    path: *mut c_char,
    handle: *mut c_void,
}

/// `sr_kemi_module_t`
#[repr(C)]
struct sr_kemi_module_t {
    mname: str_t,
    kexp: *mut sr_kemi_t,
}

const _: () = assert!(std::mem::size_of::<dlg_binds>() == 72);
const _: () = assert!(std::mem::size_of::<dlg_cb_params>() == 40);
const _: () = assert!(std::mem::size_of::<tmcb_params>() == 64);
const _: () = assert!(std::mem::size_of::<uac_req_t>() == 80);
const _: () = assert!(std::mem::size_of::<dlg_t>() == 248);
const _: () = assert!(std::mem::size_of::<sl_api_t>() == 48);
const _: () = assert!(std::mem::size_of::<sr_kemi_module_t>() == 24);

pub const DLGCB_FAILED: c_int = 1 << 2;
pub const DLGCB_CONFIRMED_NA: c_int = 1 << 3;
pub const DLGCB_TERMINATED: c_int = 1 << 6;
pub const DLGCB_EXPIRED: c_int = 1 << 7;
const TMCB_LOCAL_COMPLETED: c_int = 1 << 10;
pub const FAKED_REPLY: *mut sip_msg = usize::MAX as *mut sip_msg;
const LUMP_RPL_HDR: c_int = 1 << 1;
/// `struct tm_binds` is 70 pointers; `t_request_within` is slot 15.
const TM_BINDS_SLOTS: usize = 70;
const TM_T_REQUEST_WITHIN: usize = 15;
/// `dlg_cell` field offsets.
const OFF_H_ID: usize = 24;
const OFF_H_ENTRY: usize = 28;
const OFF_STATE: usize = 32;
const OFF_CALLID: usize = 120;
const DLG_STATE_CONFIRMED_NA: u32 = 3;
const DLG_STATE_CONFIRMED: u32 = 4;
const DLG_CALLER_LEG: c_int = 0;
const DLG_CALLEE_LEG: c_uint = 1;

unsafe extern "C" {
    static route_type: c_int;
    fn find_export(name: *const c_char, param_no: c_int, flags: c_int) -> *const c_void;
    fn find_module_by_name(name: *const c_char) -> *mut sr_module_prefix;
    fn sr_kemi_modules_size_get() -> c_int;
    fn sr_kemi_modules_get() -> *mut sr_kemi_module_t;
    fn add_lump_rpl2(msg: *mut sip_msg, s: *const c_char, len: c_int, flags: c_int) -> *mut c_void;
    pub fn register_basic_timers(n: c_int) -> c_int;
    pub fn fork_basic_utimer(
        child_id: c_int,
        desc: *const c_char,
        make_sock: c_int,
        f: unsafe extern "C" fn(c_uint, *mut c_void),
        param: *mut c_void,
        uinterval: c_int,
    ) -> c_int;
}

/// What both roles use: replies with a header, headers on forwarded requests.
struct Sip {
    freply: unsafe extern "C" fn(*mut sip_msg, c_int, *mut str_t) -> c_int,
    hdr_append: unsafe extern "C" fn(*mut sip_msg, *mut str_t) -> c_int,
}

/// What the payee uses to follow, time, reach and end dialogs.
struct Dialogs {
    register_dlgcb: unsafe extern "C" fn(*mut dlg_cell, c_int, dialog_cb, *mut c_void, Option<param_free_cb>) -> c_int,
    terminate_dlg: unsafe extern "C" fn(*mut dlg_cell, *mut str_t) -> c_int,
    get_dlg: unsafe extern "C" fn(*mut sip_msg) -> *mut dlg_cell,
    release_dlg: unsafe extern "C" fn(*mut dlg_cell),
    dlg_lookup: unsafe extern "C" fn(c_uint, c_uint) -> *mut dlg_cell,
    build_dlg_t: unsafe extern "C" fn(*mut dlg_cell, c_int) -> *mut dlg_t,
    free_tm_dlg: unsafe extern "C" fn(*mut dlg_t) -> c_int,
    dlg_update_cseq: unsafe extern "C" fn(*mut dlg_cell, c_uint, *mut str_t) -> c_int,
    t_request_within: unsafe extern "C" fn(*mut uac_req_t) -> c_int,
    dlg_manage: unsafe extern "C" fn(*mut sip_msg) -> c_int,
    dlg_set_timeout: unsafe extern "C" fn(*mut sip_msg, c_int) -> c_int,
    dlg_set_timeout_id: unsafe extern "C" fn(*mut sip_msg, c_int, c_int, c_int) -> c_int,
}

// Bound in mod_init (main process), inherited by every process.
static SIP: OnceLock<Sip> = OnceLock::new();
static DIALOGS: OnceLock<Dialogs> = OnceLock::new();

/// A KEMI export of another module, by module and function name.
unsafe fn kemi_fn(module: &[u8], name: &[u8]) -> Option<*const c_void> {
    // SAFETY: the core's KEMI registry, complete after all modules registered.
    unsafe {
        let mods = sr_kemi_modules_get();
        for i in 0..sr_kemi_modules_size_get().max(0) as usize {
            let m = &*mods.add(i);
            if m.mname.as_bytes() != module || m.kexp.is_null() {
                continue;
            }
            let mut k = m.kexp;
            while !(*k).fname.s.is_null() {
                if (*k).fname.as_bytes() == name {
                    return Some((*k).func);
                }
                k = k.add(1);
            }
        }
    }
    None
}

fn need(what: &str, m: &str) -> String {
    format!("randpay: cannot bind {what}: loadmodule \"{m}\" before privateness.so")
}

/// Bind sl and the core's header functions, and for a payee also tm and dialog
/// (mod_init, main process). The error says which `loadmodule` is missing.
pub fn bind(payee: bool) -> Result<(), String> {
    // SAFETY: core lookups by name; the function types are the documented 5.6
    // signatures (docs/kamailio-dialog-notes.md), checked against the binaries.
    unsafe {
        if SIP.get().is_none() {
            let mut sl = sl_api_t {
                zreply: ptr::null(),
                sreply: ptr::null(),
                dreply: ptr::null(),
                freply: None,
                get_reply_totag: ptr::null(),
                register_cb: ptr::null(),
            };
            let f = find_export(c"bind_sl".as_ptr(), 0, 0);
            if f.is_null() {
                return Err(need("sl", "sl.so"));
            }
            let bind_sl: unsafe extern "C" fn(*mut sl_api_t) -> c_int = std::mem::transmute(f);
            let freply = if bind_sl(&mut sl) == 0 { sl.freply } else { None }.ok_or_else(|| need("sl", "sl.so"))?;
            let hdr_append = kemi_fn(b"hdr", b"append").ok_or("randpay: the core's hdr.append is missing")?;
            let _ = SIP.set(Sip { freply, hdr_append: std::mem::transmute::<*const c_void, _>(hdr_append) });
        }
        if !payee || DIALOGS.get().is_some() {
            return Ok(());
        }
        let mut tmb: [*const c_void; TM_BINDS_SLOTS] = [ptr::null(); TM_BINDS_SLOTS];
        let f = find_export(c"load_tm".as_ptr(), -1, 0);
        if f.is_null() {
            return Err(need("tm", "tm.so"));
        }
        let load_tm: unsafe extern "C" fn(*mut c_void) -> c_int = std::mem::transmute(f);
        if load_tm(tmb.as_mut_ptr() as *mut c_void) < 0 || tmb[TM_T_REQUEST_WITHIN].is_null() {
            return Err(need("tm", "tm.so"));
        }
        let mut b = dlg_binds {
            register_dlgcb: None,
            terminate_dlg: None,
            set_dlg_var: ptr::null(),
            get_dlg_varref: ptr::null(),
            get_dlg_varval: ptr::null(),
            get_dlg_vardup: ptr::null(),
            get_dlg_varstatus: ptr::null(),
            get_dlg: None,
            release_dlg: None,
        };
        let module = find_module_by_name(c"dialog".as_ptr());
        let f = find_export(c"load_dlg".as_ptr(), 0, 0);
        if module.is_null() || f.is_null() {
            return Err(need("dialog", "dialog.so"));
        }
        let load_dlg: unsafe extern "C" fn(*mut dlg_binds) -> c_int = std::mem::transmute(f);
        if load_dlg(&mut b) < 0 {
            return Err(need("dialog", "dialog.so"));
        }
        let handle = (*module).handle;
        let sym = |name: &std::ffi::CStr| -> Result<*mut c_void, String> {
            let p = libc::dlsym(handle, name.as_ptr());
            if p.is_null() { Err(format!("randpay: dialog.so has no {name:?} (Kamailio 5.6 is needed)")) } else { Ok(p) }
        };
        let kemi = |name: &str| {
            kemi_fn(b"dialog", name.as_bytes()).ok_or_else(|| format!("randpay: dialog.so has no KEMI {name} (Kamailio 5.6 is needed)"))
        };
        let incomplete = || need("dialog", "dialog.so");
        let _ = DIALOGS.set(Dialogs {
            register_dlgcb: b.register_dlgcb.ok_or_else(incomplete)?,
            terminate_dlg: b.terminate_dlg.ok_or_else(incomplete)?,
            get_dlg: b.get_dlg.ok_or_else(incomplete)?,
            release_dlg: b.release_dlg.ok_or_else(incomplete)?,
            dlg_lookup: std::mem::transmute::<*mut c_void, _>(sym(c"dlg_lookup")?),
            build_dlg_t: std::mem::transmute::<*mut c_void, _>(sym(c"build_dlg_t")?),
            free_tm_dlg: std::mem::transmute::<*mut c_void, _>(sym(c"free_tm_dlg")?),
            dlg_update_cseq: std::mem::transmute::<*mut c_void, _>(sym(c"dlg_update_cseq")?),
            t_request_within: std::mem::transmute::<*const c_void, _>(tmb[TM_T_REQUEST_WITHIN]),
            dlg_manage: std::mem::transmute::<*const c_void, _>(kemi("dlg_manage")?),
            dlg_set_timeout: std::mem::transmute::<*const c_void, _>(kemi("dlg_set_timeout")?),
            dlg_set_timeout_id: std::mem::transmute::<*const c_void, _>(kemi("dlg_set_timeout_id")?),
        });
    }
    Ok(())
}

/// The route the current script function runs in (`REQUEST_ROUTE`, `FAILURE_ROUTE`…).
pub fn current_route() -> c_uint {
    // SAFETY: a core global, set before each route runs.
    unsafe { ptr::read_volatile(&raw const route_type) as c_uint }
}

/// Reply to `msg` with `code reason`, adding `header` (one "Name: value" line, no
/// CRLF). Statefully when the script created a transaction, else statelessly.
///
/// # Safety
/// `msg` is the request of the current script function.
pub unsafe fn reply(msg: *mut sip_msg, code: u16, reason: &str, header: Option<&str>) -> bool {
    let Some(sip) = SIP.get() else { return false };
    if let Some(h) = header {
        let line = format!("{h}\r\n");
        // SAFETY: the core copies the lump text (no LUMP_RPL_NODUP).
        if unsafe { add_lump_rpl2(msg, line.as_ptr() as *const c_char, line.len() as c_int, LUMP_RPL_HDR) }.is_null() {
            return false;
        }
    }
    let mut r = str_t::borrow(reason.as_bytes());
    // SAFETY: sl's send_reply copies the reason.
    unsafe { (sip.freply)(msg, c_int::from(code), &mut r) >= 0 }
}

/// Add `header` (one line, no CRLF) to the request being forwarded.
///
/// # Safety
/// `msg` is the request of the current script function.
pub unsafe fn append_header(msg: *mut sip_msg, header: &str) -> bool {
    let Some(sip) = SIP.get() else { return false };
    let line = format!("{header}\r\n");
    let mut s = str_t::borrow(line.as_bytes());
    // SAFETY: the core's hdr.append copies the text into a lump.
    unsafe { (sip.hdr_append)(msg, &mut s) > 0 }
}

/// Which dialog, and its Call-ID, a callback is about.
pub struct DialogId {
    pub h_entry: u32,
    pub h_id: u32,
    pub call_id: String,
}

/// # Safety
/// `cell` is a live dialog cell handed to us by the dialog module.
pub unsafe fn dialog_id(cell: *mut dlg_cell) -> DialogId {
    let base = cell as *const u8;
    // SAFETY: offsets of struct dlg_cell in 5.6 (compile-time facts, see the notes).
    unsafe {
        DialogId {
            h_entry: ptr::read_volatile(base.add(OFF_H_ENTRY) as *const u32),
            h_id: ptr::read_volatile(base.add(OFF_H_ID) as *const u32),
            call_id: String::from_utf8_lossy((*(base.add(OFF_CALLID) as *const str_t)).as_bytes()).into_owned(),
        }
    }
}

/// Make the dialog module follow this INVITE, end it by itself `backstop_secs`
/// after the answer (in case the metering stops), and call `cb` on its events.
///
/// # Safety
/// `msg` is the initial INVITE of the current script function.
pub unsafe fn follow(msg: *mut sip_msg, backstop_secs: u32, events: c_int, cb: dialog_cb) -> Result<(), &'static str> {
    let d = DIALOGS.get().ok_or("the dialog API is not bound")?;
    // SAFETY: KEMI functions of the dialog module on the current message; get_dlg
    // takes a reference that is released below.
    unsafe {
        if (d.dlg_manage)(msg) < 0 {
            return Err("dlg_manage failed (is this an initial INVITE?)");
        }
        (d.dlg_set_timeout)(msg, backstop_secs.min(c_int::MAX as u32) as c_int);
        let cell = (d.get_dlg)(msg);
        if cell.is_null() {
            return Err("the dialog module did not create a dialog");
        }
        let rc = (d.register_dlgcb)(cell, events, cb, ptr::null_mut(), None);
        (d.release_dlg)(cell);
        if rc != 0 { Err("cannot register dialog callbacks") } else { Ok(()) }
    }
}

/// Why an in-dialog action did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum DialogError {
    Unbound,
    Gone,
    NotConfirmed,
    SendFailed(c_int),
}

impl std::fmt::Display for DialogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialogError::Unbound => write!(f, "the dialog API is not bound"),
            DialogError::Gone => write!(f, "the dialog has ended"),
            DialogError::NotConfirmed => write!(f, "the dialog is not confirmed"),
            DialogError::SendFailed(rc) => write!(f, "tm could not send the request (rc {rc})"),
        }
    }
}

/// Run `f` on the live, confirmed dialog (h_entry, h_id).
fn with_dialog<R>(h_entry: u32, h_id: u32, f: impl FnOnce(&Dialogs, *mut dlg_cell) -> Result<R, DialogError>) -> Result<R, DialogError> {
    let d = DIALOGS.get().ok_or(DialogError::Unbound)?;
    // SAFETY: dlg_lookup takes a reference, released after `f`.
    unsafe {
        let cell = (d.dlg_lookup)(h_entry, h_id);
        if cell.is_null() {
            return Err(DialogError::Gone);
        }
        let state = ptr::read_volatile((cell as *const u8).add(OFF_STATE) as *const u32);
        let out = if state == DLG_STATE_CONFIRMED || state == DLG_STATE_CONFIRMED_NA { f(d, cell) } else { Err(DialogError::NotConfirmed) };
        (d.release_dlg)(cell);
        out
    }
}

/// Send an INFO with `headers` (CRLF-terminated lines) to the caller leg, and
/// have `cb(…, token)` called with its final reply in whichever process gets it.
pub fn send_info_to_caller(h_entry: u32, h_id: u32, headers: &str, cb: transaction_cb) -> Result<(), DialogError> {
    with_dialog(h_entry, h_id, |d, cell| {
        // SAFETY: build_dlg_t allocates a tm dialog for the leg in this process,
        // freed below with the dialog module's own free function; tm copies what it sends.
        unsafe {
            let td = (d.build_dlg_t)(cell, DLG_CALLER_LEG);
            if td.is_null() {
                return Err(DialogError::SendFailed(-1));
            }
            let mut method = str_t::borrow(b"INFO");
            let mut hdrs = str_t::borrow(headers.as_bytes());
            let mut req = uac_req_t {
                method: &mut method,
                headers: &mut hdrs,
                body: ptr::null_mut(),
                ssock: ptr::null_mut(),
                ssockname: ptr::null_mut(),
                dialog: td,
                cb_flags: TMCB_LOCAL_COMPLETED,
                cb: Some(cb),
                cbp: ptr::null_mut(),
                callid: ptr::null_mut(),
            };
            let rc = (d.t_request_within)(&mut req);
            if rc > 0 {
                // Tell the dialog module the CSeq tm used, so its BYE to this leg comes after it.
                let used = (*td).loc_seq.value.to_string();
                let mut s = str_t::borrow(used.as_bytes());
                (d.dlg_update_cseq)(cell, DLG_CALLEE_LEG, &mut s);
            }
            (d.free_tm_dlg)(td);
            if rc > 0 { Ok(()) } else { Err(DialogError::SendFailed(rc)) }
        }
    })
}

/// End both legs with BYE carrying `reason` (a `Reason:` header value).
pub fn end(h_entry: u32, h_id: u32, reason: &str) -> Result<(), DialogError> {
    with_dialog(h_entry, h_id, |d, cell| {
        let line = format!("Reason: {reason}\r\n");
        let mut s = str_t::borrow(line.as_bytes());
        // SAFETY: dlg_bye_all copies the header text; it may re-enter our dialog
        // callback in this process (which only queues an event).
        let rc = unsafe { (d.terminate_dlg)(cell, &mut s) };
        if rc == 0 { Ok(()) } else { Err(DialogError::SendFailed(rc)) }
    })
}

/// Have the dialog module end the dialog `secs` from now unless moved again
/// (the backstop if metering stops).
pub fn set_timeout(h_entry: u32, h_id: u32, secs: u32) -> bool {
    let Some(d) = DIALOGS.get() else { return false };
    // SAFETY: the KEMI function finds the dialog itself and does not use msg.
    unsafe { (d.dlg_set_timeout_id)(ptr::null_mut(), secs.min(c_int::MAX as u32) as c_int, h_entry as c_int, h_id as c_int) > 0 }
}
