//! Kamailio 5.x core interface facts (x86_64): the `#[repr(C)]` layouts the module
//! exchanges with the core, their sizes checked at compile time, the constants,
//! and the core symbols resolved from the kamailio executable at dlopen.
//! See shared/docs/kamailio-abi.md §3.
#![allow(non_camel_case_types, non_upper_case_globals, dead_code)]

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};

/// `str { char *s; int len; }`
#[repr(C)]
#[derive(Clone, Copy)]
pub struct str_t {
    pub s: *mut c_char,
    pub len: c_int,
}

impl str_t {
    pub const fn lit(s: &'static CStr) -> str_t {
        str_t { s: s.as_ptr() as *mut c_char, len: s.count_bytes() as c_int }
    }

    pub const NULL: str_t = str_t { s: std::ptr::null_mut(), len: 0 };

    /// A `str` pointing into `b` for the duration of a core call (the core copies).
    pub fn borrow(b: &[u8]) -> str_t {
        str_t { s: b.as_ptr() as *mut c_char, len: b.len().min(c_int::MAX as usize) as c_int }
    }

    /// # Safety
    /// `s` must be null or point to `len` readable bytes for the lifetime used.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.s.is_null() || self.len <= 0 {
            &[]
        } else {
            // SAFETY: promised by the caller.
            unsafe { std::slice::from_raw_parts(self.s as *const u8, self.len as usize) }
        }
    }
}

/// Opaque core structures: never dereferenced from Rust.
#[repr(C)]
pub struct sip_msg {
    _p: [u8; 0],
}
#[repr(C)]
pub struct pv_spec_t {
    _p: [u8; 0],
}
#[repr(C)]
pub struct fparam_t {
    _p: [u8; 0],
}

/// `pv_value_t { str rs; int ri; int flags; }`
#[repr(C)]
pub struct pv_value_t {
    pub rs: str_t,
    pub ri: c_int,
    pub flags: c_int,
}

pub const PV_VAL_NULL: c_int = 1;
pub const PV_VAL_STR: c_int = 4;
pub const PV_VAL_INT: c_int = 8;
pub const PV_TYPE_INT: c_int = 16;
pub const PV_VAL_PKG: c_int = 32;
pub const PV_VAL_SHM: c_int = 64;
/// The assignment operator `pv_set_spec_value` expects (lvalue.h `EQ_T`).
pub const EQ_T: c_int = 254;

pub type fixup_function = unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int;
pub type param_func_t = unsafe extern "C" fn(c_uint, *mut c_void) -> c_int;
pub type rpc_function_t = unsafe extern "C" fn(*mut rpc_t, *mut c_void);

/// `cmd_export_t`. `function` is `fn(msg, p1[, p2…p6]) -> int`, stored untyped
/// because its arity follows `param_no`.
#[repr(C)]
pub struct cmd_export_t {
    pub name: *const c_char,
    pub function: *const c_void,
    pub param_no: c_int,
    pub fixup: Option<fixup_function>,
    pub free_fixup: Option<fixup_function>,
    pub flags: c_uint,
}

/// `param_export_t`
#[repr(C)]
pub struct param_export_t {
    pub name: *const c_char,
    pub type_: c_uint,
    pub param_pointer: *mut c_void,
}

/// `rpc_export_t`
#[repr(C)]
pub struct rpc_export_t {
    pub name: *const c_char,
    pub function: Option<rpc_function_t>,
    pub doc_str: *const *const c_char,
    pub flags: c_uint,
}

/// `struct module_exports` (Kamailio 5.x)
#[repr(C)]
pub struct module_exports {
    pub name: *const c_char,
    pub dlflags: c_uint,
    pub cmds: *const cmd_export_t,
    pub params: *const param_export_t,
    pub rpc_methods: *const rpc_export_t,
    pub pv_items: *const c_void,
    pub response_f: Option<unsafe extern "C" fn(*mut sip_msg) -> c_int>,
    pub init_mod_f: Option<unsafe extern "C" fn() -> c_int>,
    pub init_child_f: Option<unsafe extern "C" fn(c_int) -> c_int>,
    pub destroy_mod_f: Option<unsafe extern "C" fn()>,
}

/// `rpc_t`: the transport's reply callbacks.
#[repr(C)]
pub struct rpc_t {
    pub fault: Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_char, ...)>,
    pub send: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    pub add: Option<unsafe extern "C" fn(*mut c_void, *const c_char, ...) -> c_int>,
    pub scan: Option<unsafe extern "C" fn(*mut c_void, *const c_char, ...) -> c_int>,
    pub rpl_printf: Option<unsafe extern "C" fn(*mut c_void, *const c_char, ...) -> c_int>,
    pub struct_add: Option<unsafe extern "C" fn(*mut c_void, *const c_char, ...) -> c_int>,
    pub array_add: Option<unsafe extern "C" fn(*mut c_void, *const c_char, ...) -> c_int>,
    pub struct_scan: Option<unsafe extern "C" fn(*mut c_void, *const c_char, ...) -> c_int>,
    pub struct_printf: Option<unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char, ...) -> c_int>,
    pub capabilities: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    pub delayed_ctx_new: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    pub delayed_ctx_close: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// `sr_kemi_t`: one KEMI export.
#[repr(C)]
pub struct sr_kemi_t {
    pub mname: str_t,
    pub fname: str_t,
    pub rtype: c_int,
    pub func: *const c_void,
    pub ptypes: [c_int; 6],
}

/// `sr_kemi_xval_t { int vtype; union { int n; str s; void *dict; } v; }`
#[repr(C)]
pub struct sr_kemi_xval_t {
    pub vtype: c_int,
    pub v: str_t,
}

/// `ksr_logdata_t`, used when a structured log engine is active.
#[repr(C)]
pub struct ksr_logdata_t {
    pub v_facility: c_int,
    pub v_level: c_int,
    pub v_lname: *const c_char,
    pub v_fname: *const c_char,
    pub v_fline: c_int,
    pub v_mname: *const c_char,
    pub v_func: *const c_char,
    pub v_locinfo: *const c_char,
    pub v_pid: c_int,
    pub v_pidx: c_int,
}

pub type sr_malloc_f =
    unsafe extern "C" fn(*mut c_void, usize, *const c_char, *const c_char, c_uint, *const c_char) -> *mut c_void;
pub type sr_free_f = unsafe extern "C" fn(*mut c_void, *mut c_void, *const c_char, *const c_char, c_uint, *const c_char);

/// Prefix of `sr_shm_api_t` (`_shm_root`), DBG_SR_MEMORY signatures.
#[repr(C)]
pub struct sr_shm_api_t {
    pub mname: *mut c_char,
    pub mem_pool: *mut c_void,
    pub mem_block: *mut c_void,
    pub xmalloc: Option<sr_malloc_f>,
    pub xmallocxz: Option<sr_malloc_f>,
    pub xmalloc_unsafe: Option<sr_malloc_f>,
    pub xrealloc: *const c_void,
    pub xreallocxf: *const c_void,
    pub xresize: *const c_void,
    pub xfree: Option<sr_free_f>,
}

pub const PARAM_STRING: c_uint = 1 << 0;
pub const PARAM_INT: c_uint = 1 << 1;
pub const PARAM_USE_FUNC: c_uint = 1 << 31;

pub const REQUEST_ROUTE: c_uint = 1;
pub const FAILURE_ROUTE: c_uint = 2;
pub const BRANCH_ROUTE: c_uint = 8;
pub const ANY_ROUTE: c_uint = 0xFFFF_FFFF;

pub const PROC_MAIN: c_int = 0;
pub const PROC_INIT: c_int = -127;

pub const SR_KEMIP_NONE: c_int = 0;
pub const SR_KEMIP_INT: c_int = 1;
pub const SR_KEMIP_STR: c_int = 2;
pub const SR_KEMIP_XVAL: c_int = 8;
pub const SR_KEMIP_NULL: c_int = 16;

pub const L_ERR: c_int = -1;
pub const L_WARN: c_int = 0;
pub const L_NOTICE: c_int = 1;
pub const L_INFO: c_int = 2;
pub const L_DBG: c_int = 3;

/// Kamailio's largest URI (this build).
pub const MAX_URI_SIZE: usize = 1024;

// SAFETY of the declarations: they match the definitions in Kamailio 5.6 (checked
// with `nm -D --defined-only /usr/sbin/kamailio` and by running the module).
unsafe extern "C" {
    pub static process_no: c_int;
    pub static log_stderr: c_int;
    pub static _km_log_func: Option<unsafe extern "C" fn(c_int, *const c_char, ...)>;
    pub static _ksr_slog_func: Option<unsafe extern "C" fn(*mut ksr_logdata_t, *const c_char, ...)>;
    pub static _shm_root: sr_shm_api_t;
    pub fn my_pid() -> c_int;
    pub fn get_debug_level(mname: *const c_char, mnlen: c_int) -> c_int;
    pub fn get_debug_facility(mname: *const c_char, mnlen: c_int) -> c_int;

    pub fn pv_cache_get(name: *mut str_t) -> *mut pv_spec_t;
    pub fn pv_get_spec_value(msg: *mut sip_msg, sp: *mut pv_spec_t, val: *mut pv_value_t) -> c_int;
    pub fn pv_set_spec_value(msg: *mut sip_msg, sp: *mut pv_spec_t, op: c_int, val: *mut pv_value_t) -> c_int;
    pub fn pv_value_destroy(val: *mut pv_value_t);

    pub fn rewrite_uri(msg: *mut sip_msg, uri: *mut str_t) -> c_int;
    pub fn set_ruri_q(q: c_int);
    pub fn append_branch(
        msg: *mut sip_msg,
        uri: *mut str_t,
        dst_uri: *mut str_t,
        path: *mut str_t,
        q: c_int,
        flags: c_uint,
        force_socket: *mut c_void,
        instance: *mut str_t,
        reg_id: c_uint,
        ruid: *mut str_t,
        location_ua: *mut str_t,
    ) -> c_int;

    pub fn get_str_fparam(dst: *mut str_t, msg: *mut sip_msg, param: *mut fparam_t) -> c_int;
    pub fn fixup_spve_null(param: *mut *mut c_void, param_no: c_int) -> c_int;
    pub fn fixup_free_spve_null(param: *mut *mut c_void, param_no: c_int) -> c_int;
    pub fn fixup_spve_spve(param: *mut *mut c_void, param_no: c_int) -> c_int;
    pub fn fixup_free_spve_spve(param: *mut *mut c_void, param_no: c_int) -> c_int;
    pub fn fixup_spve_all(param: *mut *mut c_void, param_no: c_int) -> c_int;
    pub fn fixup_free_spve_all(param: *mut *mut c_void, param_no: c_int) -> c_int;

    pub fn sr_kemi_modules_add(klist: *const sr_kemi_t) -> c_int;
}

/// Makes statics holding raw pointers `Sync`; `repr(transparent)` keeps the
/// exported symbol's bytes identical to the C object.
#[repr(transparent)]
pub struct Ffi<T>(pub T);
// SAFETY: the wrapped tables are immutable after load and only read by the core.
unsafe impl<T> Sync for Ffi<T> {}

const _: () = assert!(std::mem::size_of::<str_t>() == 16);
const _: () = assert!(std::mem::size_of::<pv_value_t>() == 24);
const _: () = assert!(std::mem::size_of::<cmd_export_t>() == 48);
const _: () = assert!(std::mem::size_of::<param_export_t>() == 24);
const _: () = assert!(std::mem::size_of::<rpc_export_t>() == 32);
const _: () = assert!(std::mem::size_of::<module_exports>() == 80);
const _: () = assert!(std::mem::size_of::<rpc_t>() == 96);
const _: () = assert!(std::mem::size_of::<sr_kemi_t>() == 72);
const _: () = assert!(std::mem::size_of::<sr_kemi_xval_t>() == 24);
const _: () = assert!(std::mem::size_of::<ksr_logdata_t>() == 64);
