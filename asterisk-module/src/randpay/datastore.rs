//! The `randpay` datastore on each metered channel: it carries the call's key,
//! pins the module (like channel.rs's state, it counts in `LIVE_STATES`, so
//! unload waits for the call), and its destruction at hangup is how metering
//! learns the call ended. The destroy callback may run on any thread, so it only
//! queues a job for the module thread.

use std::ffi::c_void;
use std::sync::atomic::Ordering;

use crate::channel::{LIVE_STATES, Locked};
use crate::ffi::{self, ast_channel, ast_datastore_info};

struct Tag {
    key: String,
}

unsafe extern "C" fn destroy(data: *mut c_void) {
    crate::log::fence("randpay datastore destroy", (), || {
        if data.is_null() {
            return;
        }
        // SAFETY: set from Box::into_raw in `attach`; Asterisk calls this once.
        let tag = unsafe { Box::from_raw(data as *mut Tag) };
        if let Some(engine) = crate::engine() {
            let key = tag.key;
            engine.randpay_detached(move |m| {
                if let Some(m) = m {
                    m.ended(&key, "hangup");
                }
            });
        }
        LIVE_STATES.fetch_sub(1, Ordering::SeqCst);
    });
}

static INFO: ast_datastore_info = ast_datastore_info {
    type_: c"randpay".as_ptr(),
    duplicate: None,
    destroy: Some(destroy),
    chan_fixup: None,
    chan_breakdown: None,
};

/// The key this channel is metered under, if it is.
///
/// # Safety
/// `chan` is a live channel of the current callback, not locked.
pub unsafe fn key_of(chan: *mut ast_channel) -> Option<String> {
    // SAFETY: per the caller; the list is read under the channel lock.
    unsafe {
        let _lock = Locked::new(chan);
        let ds = ffi::ast_channel_datastore_find(chan, &INFO, std::ptr::null());
        if ds.is_null() || (*ds).data.is_null() {
            return None;
        }
        Some((*((*ds).data as *const Tag)).key.clone())
    }
}

/// Mark the channel as metered under `key` (once; a second call keeps the first key).
/// False if Asterisk could not allocate the datastore.
///
/// # Safety
/// `chan` is a live channel of the current callback, not locked.
pub unsafe fn attach(chan: *mut ast_channel, key: &str) -> bool {
    // SAFETY: per the caller. Allocation (which takes a module reference) happens
    // with no lock held, as channel.rs does.
    unsafe {
        if key_of(chan).is_some() {
            return true;
        }
        let ds = ffi::__ast_datastore_alloc(&INFO, std::ptr::null(), crate::module_self(), c"datastore.rs".as_ptr(), 0, c"randpay".as_ptr());
        if ds.is_null() {
            return false;
        }
        (*ds).data = Box::into_raw(Box::new(Tag { key: key.to_owned() })) as *mut c_void;
        LIVE_STATES.fetch_add(1, Ordering::SeqCst);
        let lock = Locked::new(chan);
        if ffi::ast_channel_datastore_find(chan, &INFO, std::ptr::null()).is_null() {
            ffi::ast_channel_datastore_add(chan, ds);
            drop(lock);
        } else {
            drop(lock);
            // Another thread attached one meanwhile; this one's destroy must not end the call.
            let tag = Box::from_raw((*ds).data as *mut Tag);
            (*ds).data = std::ptr::null_mut();
            drop(tag);
            LIVE_STATES.fetch_sub(1, Ordering::SeqCst);
            ffi::ast_datastore_free(ds);
        }
        true
    }
}
