//! RANDPAY metering in Kamailio (docs/randpay.md): `randpay_require()` on the
//! payee, `randpay_pay()` on the payer, the dialog callbacks and the RANDPAY
//! process that meters calls and ends unpaid ones.
//!
//! - dialog.rs: the dialog/tm/sl interfaces;
//! - ipc.rs: how processes reach the RANDPAY process;
//! - process.rs: the RANDPAY process (state, schedule, side channel);
//! - script.rs: the script functions and the callbacks.

pub mod dialog;
pub mod ipc;
pub mod process;
pub mod script;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use ness_core::randpay::{RandpayRole, RandpaySettings};

use crate::log::{kerr, kwarn};

/// The `randpay_*` modparams (main process, while the cfg is parsed).
pub static RANDPAY: LazyLock<Mutex<RandpaySettings>> = LazyLock::new(|| Mutex::new(RandpaySettings::default()));

/// `randpay_side_channel` / `randpay_side_peers`, as given (checked in mod_init).
pub static SIDE_CHANNEL_TEXT: Mutex<(String, String)> = Mutex::new((String::new(), String::new()));
/// …and checked.
pub static SIDE_CHANNEL: Mutex<Option<(SocketAddr, Vec<IpAddr>)>> = Mutex::new(None);

/// The RANDPAY process's pid, once it runs (0 elsewhere until then).
pub static PROCESS_PID: AtomicU32 = AtomicU32::new(0);

/// Events raised by callbacks inside the RANDPAY process itself (e.g. the
/// dialog module's TERMINATED callback while that process ends a call): handled
/// after the current slice instead of over the socket to itself.
pub static LOCAL_EVENTS: Mutex<Vec<ipc::Request>> = Mutex::new(Vec::new());

/// How long callbacks wait to hand an event to the RANDPAY process.
const EVENT_TIMEOUT: Duration = Duration::from_secs(2);

pub fn role() -> RandpayRole {
    RANDPAY.lock().unwrap_or_else(|p| p.into_inner()).role
}

/// Hand an event to the RANDPAY process, from any process: a call ended, a
/// ticket came (no answer is awaited), or a call was answered (awaited).
pub fn notify(req: ipc::Request) {
    if PROCESS_PID.load(Ordering::SeqCst) == std::process::id() {
        LOCAL_EVENTS.lock().unwrap_or_else(|p| p.into_inner()).push(req);
        return;
    }
    let sent = if req.is_event() {
        ipc::send(&req, EVENT_TIMEOUT)
    } else {
        ipc::call(&req, EVENT_TIMEOUT).map(|reply| {
            if let ipc::Reply::Error { message } = reply {
                kwarn!("randpay: {message}");
            }
        })
    };
    if let Err(e) = sent {
        kerr!("randpay: an event was lost: {e} ({req:?})");
    }
}

/// mod_init: check the settings, bind the interfaces, reserve the process.
pub fn init() -> Result<(), String> {
    let settings = RANDPAY.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if settings.role == RandpayRole::Off {
        return Ok(());
    }
    settings.check().map_err(|e| format!("randpay: {e}"))?;
    let (listen, peers) = SIDE_CHANNEL_TEXT.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if !listen.is_empty() {
        if settings.role != RandpayRole::Payee {
            return Err("randpay_side_channel is for a payee (randpay_role payee)".into());
        }
        *SIDE_CHANNEL.lock().unwrap_or_else(|p| p.into_inner()) = Some(ness_core::randpay::side_channel::listen_setting(&listen, &peers)?);
    }
    if settings.payee_url.is_some() && settings.role != RandpayRole::Payer {
        return Err("randpay_payee_url is for a payer (randpay_role payer)".into());
    }
    if let Some(dir) = settings.ledger.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(format!("randpay_ledger: the directory {} does not exist", dir.display()));
    }
    dialog::bind(settings.role == RandpayRole::Payee)?;
    script::resolve_pvs(settings.role)?;
    ipc::MAIN_PID.store(std::process::id(), Ordering::SeqCst);
    // SAFETY: core function, main process, before the fork.
    if unsafe { dialog::register_basic_timers(1) } < 0 {
        return Err("randpay: cannot reserve the RANDPAY process".into());
    }
    Ok(())
}

/// child_init(PROC_MAIN): fork the RANDPAY process.
pub fn fork_process() -> Result<(), String> {
    if role() == RandpayRole::Off {
        return Ok(());
    }
    // SAFETY: core function, called from the main process in child_init(PROC_MAIN);
    // `slice` is a function of this module, loaded before the fork.
    let pid = unsafe { dialog::fork_basic_utimer(-1, c"RANDPAY".as_ptr(), 1, process::slice, std::ptr::null_mut(), 1000) };
    if pid < 0 { Err("randpay: cannot fork the RANDPAY process".into()) } else { Ok(()) }
}
