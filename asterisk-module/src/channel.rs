//! What the module keeps on a channel: one datastore per channel that has used
//! one of its functions, holding `EMC_ENUM_QUERY` results. The datastore is allocated with
//! the module as owner, so Asterisk counts it as a use of the module: `module
//! unload` is refused while such a call is up and works after its hangup. Also
//! status variables and the autoservice bracket around slow lookups.

use std::ffi::{CStr, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

use ness_core::enumer::dialplan::ServiceFilter;

use crate::ffi::{self, AO2_LOCK_REQ_MUTEX, ast_channel, ast_datastore_info};

/// Results kept per channel; the oldest query is dropped beyond this.
pub const MAX_QUERIES: usize = 64;

/// One `EMC_ENUM_QUERY` result set.
pub struct Query {
    pub id: u64,
    pub service: ServiceFilter,
    pub uris: Vec<String>,
}

/// Everything the module keeps for one channel.
#[derive(Default)]
pub struct ChannelState {
    pub queries: Vec<Query>,
}

/// Channels holding a state: their hangup will call `destroy_state`, so the
/// module's code must stay mapped until this is zero (even `module unload -f`,
/// which ignores the use count, is refused until then).
pub static LIVE_STATES: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn destroy_state(data: *mut c_void) {
    crate::log::fence("datastore destroy", (), || {
        if !data.is_null() {
            // SAFETY: set from Box::into_raw in `with_state`; Asterisk calls this once.
            drop(unsafe { Box::from_raw(data as *mut ChannelState) });
            LIVE_STATES.fetch_sub(1, Ordering::SeqCst);
        }
    });
}

static STATE_INFO: ast_datastore_info = ast_datastore_info {
    type_: c"privateness".as_ptr(),
    duplicate: None,
    destroy: Some(destroy_state),
    chan_fixup: None,
    chan_breakdown: None,
};

/// The channel lock, held while the guard lives.
pub struct Locked(*mut ast_channel);

impl Locked {
    /// # Safety
    /// `chan` is a live channel handed to the current callback.
    pub unsafe fn new(chan: *mut ast_channel) -> Locked {
        // SAFETY: ao2 lock of a live channel (what ast_channel_lock expands to).
        unsafe {
            ffi::__ao2_lock(
                chan,
                AO2_LOCK_REQ_MUTEX,
                c"channel.rs".as_ptr(),
                c"privateness".as_ptr(),
                0,
                c"chan".as_ptr(),
            );
        }
        Locked(chan)
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: locked in `new`.
        unsafe {
            ffi::__ao2_unlock(
                self.0,
                c"channel.rs".as_ptr(),
                c"privateness".as_ptr(),
                0,
                c"chan".as_ptr(),
            )
        };
    }
}

/// Run `f` on the channel's state, creating it (and so pinning the module
/// until hangup) on first use. None if Asterisk could not allocate it.
///
/// # Safety
/// `chan` is a live channel handed to the current callback.
pub unsafe fn with_state<R>(
    chan: *mut ast_channel,
    f: impl FnOnce(&mut ChannelState) -> R,
) -> Option<R> {
    // SAFETY: per the caller; the datastore list is walked and changed under the
    // channel lock, as datastore.h asks. Allocating (which takes a module reference
    // and tells the core's use-count listeners) happens with no lock held, as
    // func_enum does, so no lock order with the core's own locks can arise.
    unsafe {
        {
            let _lock = Locked::new(chan);
            let ds = ffi::ast_channel_datastore_find(chan, &STATE_INFO, std::ptr::null());
            if !ds.is_null() {
                let state = (*ds).data as *mut ChannelState;
                return (!state.is_null()).then(|| f(&mut *state));
            }
        }
        let fresh = ffi::__ast_datastore_alloc(
            &STATE_INFO,
            std::ptr::null(),
            crate::module_self(),
            c"channel.rs".as_ptr(),
            0,
            c"privateness".as_ptr(),
        );
        if fresh.is_null() {
            return None;
        }
        (*fresh).data = Box::into_raw(Box::<ChannelState>::default()) as *mut c_void;
        LIVE_STATES.fetch_add(1, Ordering::SeqCst);
        let lock = Locked::new(chan);
        // Another thread may have attached one meanwhile (a channel's functions can
        // be evaluated from AMI or the CLI as well as its own thread).
        let existing = ffi::ast_channel_datastore_find(chan, &STATE_INFO, std::ptr::null());
        let (result, spare) = if existing.is_null() {
            ffi::ast_channel_datastore_add(chan, fresh);
            (f(&mut *((*fresh).data as *mut ChannelState)), None)
        } else {
            let state = (*existing).data as *mut ChannelState;
            if state.is_null() {
                drop(lock);
                ffi::ast_datastore_free(fresh);
                return None;
            }
            (f(&mut *state), Some(fresh))
        };
        drop(lock);
        if let Some(spare) = spare {
            ffi::ast_datastore_free(spare);
        }
        Some(result)
    }
}

/// Mark the channel as using the module (attach its state if not yet there).
///
/// # Safety
/// `chan` is null or a live channel handed to the current callback, not locked.
pub unsafe fn attach(chan: *mut ast_channel) {
    if !chan.is_null() {
        // SAFETY: per the caller.
        unsafe { with_state(chan, |_| ()) };
    }
}

/// Set a channel variable (copied by Asterisk).
///
/// # Safety
/// `chan` is a live channel handed to the current callback.
pub unsafe fn set_var(chan: *mut ast_channel, name: &CStr, value: &CStr) {
    // SAFETY: per the caller; setvar locks the channel itself and copies both strings.
    unsafe { ffi::pbx_builtin_setvar_helper(chan, name.as_ptr(), value.as_ptr()) };
}

/// Keeps the channel's media flowing while the module waits for the node
/// (what ENUMLOOKUP does around its DNS query).
pub struct Autoservice(*mut ast_channel);

impl Autoservice {
    /// # Safety
    /// `chan` is null or a live channel handed to the current callback, not locked.
    pub unsafe fn start(chan: *mut ast_channel) -> Autoservice {
        // SAFETY: per the caller.
        if !chan.is_null() && unsafe { ffi::ast_autoservice_start(chan) } == 0 {
            Autoservice(chan)
        } else {
            Autoservice(std::ptr::null_mut())
        }
    }
}

impl Drop for Autoservice {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: started in `start` on this channel.
            unsafe { ffi::ast_autoservice_stop(self.0) };
        }
    }
}
