//! The few core calls the module makes on a SIP message: reading and writing
//! pseudo-variables, evaluating fixed-up parameters, rewriting the R-URI and
//! appending branches. Each wraps one exported core function; the core copies
//! what it is given, so Rust buffers only have to live for the call.

use std::ffi::{c_char, c_int};
use std::ptr;

use crate::ffi::{self, PV_VAL_NULL, PV_VAL_PKG, PV_VAL_SHM, PV_VAL_STR, fparam_t, pv_spec_t, pv_value_t, sip_msg, str_t};

/// A pseudo-variable spec resolved once (main process, inherited by children).
#[derive(Clone, Copy)]
pub struct PvSpec(*mut pv_spec_t);

// SAFETY: specs live in the core's PV cache for the life of the process and are
// only used on the process's own thread.
unsafe impl Send for PvSpec {}
unsafe impl Sync for PvSpec {}

impl PvSpec {
    /// Resolve `$rU`, `$fU`, `$var(x)`… (needs pv.so). None if the name is unknown.
    pub fn resolve(name: &str) -> Option<PvSpec> {
        let mut s = str_t::borrow(name.as_bytes());
        // SAFETY: the core parses the name and caches the spec; it copies the name.
        let sp = unsafe { ffi::pv_cache_get(&mut s) };
        (!sp.is_null()).then_some(PvSpec(sp))
    }

    pub fn from_raw(p: *mut pv_spec_t) -> Option<PvSpec> {
        (!p.is_null()).then_some(PvSpec(p))
    }

    pub fn as_raw(self) -> *mut pv_spec_t {
        self.0
    }

    /// The variable's string value (None if null or not a string).
    ///
    /// # Safety
    /// `msg` must be the message the core handed to the current call.
    pub unsafe fn get(self, msg: *mut sip_msg) -> Option<Vec<u8>> {
        let mut v = pv_value_t { rs: str_t::NULL, ri: 0, flags: 0 };
        // SAFETY: valid spec and message per the caller.
        if unsafe { ffi::pv_get_spec_value(msg, self.0, &mut v) } != 0 {
            return None;
        }
        let out = (v.flags & PV_VAL_NULL == 0 && v.flags & PV_VAL_STR != 0)
            // SAFETY: the core returned a str valid until the value is destroyed.
            .then(|| unsafe { v.rs.as_bytes() }.to_vec());
        if v.flags & (PV_VAL_PKG | PV_VAL_SHM) != 0 {
            // SAFETY: the value was allocated by the core for us.
            unsafe { ffi::pv_value_destroy(&mut v) };
        }
        out
    }

    /// Assign a string.
    ///
    /// # Safety
    /// As for [`PvSpec::get`].
    pub unsafe fn set(self, msg: *mut sip_msg, value: &[u8]) -> bool {
        let mut v = pv_value_t { rs: str_t::borrow(value), ri: 0, flags: PV_VAL_STR };
        // SAFETY: the setter copies the value.
        unsafe { ffi::pv_set_spec_value(msg, self.0, ffi::EQ_T, &mut v) == 0 }
    }

    /// Assign an integer.
    ///
    /// # Safety
    /// As for [`PvSpec::get`].
    pub unsafe fn set_int(self, msg: *mut sip_msg, value: i64) -> bool {
        let mut v = pv_value_t { rs: str_t::borrow(b""), ri: value as _, flags: ffi::PV_VAL_INT | ffi::PV_TYPE_INT };
        // SAFETY: as for `set`.
        unsafe { ffi::pv_set_spec_value(msg, self.0, ffi::EQ_T, &mut v) == 0 }
    }
}

/// Evaluate a parameter fixed up by a `fixup_spve_*` fixup.
///
/// # Safety
/// `param` must be the fixed-up parameter of the current call.
pub unsafe fn fparam_str(msg: *mut sip_msg, param: *mut c_char) -> Option<Vec<u8>> {
    if param.is_null() {
        return None;
    }
    let mut s = str_t::NULL;
    // SAFETY: per the caller; the result points to core memory valid during the call.
    if unsafe { ffi::get_str_fparam(&mut s, msg, param as *mut fparam_t) } != 0 {
        return None;
    }
    Some(unsafe { s.as_bytes() }.to_vec())
}

/// Replace the R-URI and set its q (thousandths).
///
/// # Safety
/// `msg` must be the message of the current call.
pub unsafe fn rewrite_ruri(msg: *mut sip_msg, uri: &str, q: c_int) -> bool {
    let mut s = str_t::borrow(uri.as_bytes());
    // SAFETY: rewrite_uri copies the URI into pkg memory.
    let ok = unsafe { ffi::rewrite_uri(msg, &mut s) } == 1;
    if ok {
        // SAFETY: plain setter of the current R-URI's q.
        unsafe { ffi::set_ruri_q(q) };
    }
    ok
}

/// Add a branch with `uri` and q (thousandths).
///
/// # Safety
/// As for [`rewrite_ruri`].
pub unsafe fn append_branch(msg: *mut sip_msg, uri: &str, q: c_int) -> bool {
    let mut s = str_t::borrow(uri.as_bytes());
    // SAFETY: append_branch copies the URI; unused arguments are null/0 as in C callers.
    unsafe {
        ffi::append_branch(
            msg,
            &mut s,
            ptr::null_mut(),
            ptr::null_mut(),
            q,
            0,
            ptr::null_mut(),
            ptr::null_mut(),
            0,
            ptr::null_mut(),
            ptr::null_mut(),
        ) == 1
    }
}
