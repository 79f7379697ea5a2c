//! Skywire trunks hosted inside Kamailio (docs/skywire-trunk.md). With
//! `modparam("privateness", "trunk_config", "/etc/ness/trunk.toml")` the module
//! reads the same `[[trunk]]` tables as the `ness-trunk` daemon:
//!
//! - mod_init (main process, before any fork): the file is read and checked
//!   (keys, secrets mode 0600, addresses), so a mistake stops Kamailio at start
//!   with the reason; one process is reserved. No runtime, thread or socket yet.
//! - child_init(PROC_MAIN): the TRUNK process is forked. It builds one
//!   current-thread tokio runtime, binds every relay and keeps every link up
//!   for the life of Kamailio, and answers `privateness.trunks` on an abstract
//!   Unix socket named after Kamailio's main pid (only Kamailio's own user, or
//!   root, may ask). It never returns into Kamailio's code: if it cannot start
//!   its relays it logs why, and says so to `privateness.trunks`, and waits.

use std::ffi::{c_char, c_int};
use std::io::{BufRead, BufReader, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use ness_core::trunk::config::{self, Trunk};
use ness_core::trunk::{TrunkStatus, host};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::log::{kerr, kinfo, kwarn};

unsafe extern "C" {
    fn register_procs(no: c_int) -> c_int;
    fn fork_process(child_id: c_int, desc: *const c_char, make_sock: c_int) -> c_int;
}
/// fork_process: the new process gets no child_init calls.
const PROC_NOCHLDINIT: c_int = -128;

/// `trunk_config`, as given.
pub static CONFIG_PATH: Mutex<String> = Mutex::new(String::new());
/// The checked trunks (mod_init).
static TRUNKS: OnceLock<Vec<Trunk>> = OnceLock::new();
/// Kamailio's main pid: the status socket's name.
static MAIN_PID: AtomicU32 = AtomicU32::new(0);

/// How long `privateness.trunks` waits for the TRUNK process.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// What the TRUNK process answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Answer {
    Running { trunks: Vec<TrunkStatus> },
    Failed { reason: String },
}

fn address() -> std::io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("privateness-trunk-{}", MAIN_PID.load(Ordering::Relaxed)))
}

/// mod_init: read and check the trunk file, reserve the TRUNK process.
pub fn init() -> Result<(), String> {
    let path = CONFIG_PATH.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if path.is_empty() {
        return Ok(());
    }
    let trunks = config::load(std::path::Path::new(&path)).map_err(|e| format!("trunk_config: {e}"))?;
    if trunks.is_empty() {
        return Err(format!("trunk_config: {path} has no [[trunk]]"));
    }
    for t in &trunks {
        kinfo!("trunk {}: peer visor {}, {} ↔ {}, {:?}", t.name, t.id.peer, t.ports.local, t.ports.owned, t.role);
    }
    MAIN_PID.store(std::process::id(), Ordering::SeqCst);
    let _ = TRUNKS.set(trunks);
    // SAFETY: core function, main process, in mod_init.
    if unsafe { register_procs(1) } < 0 {
        return Err("trunk: cannot reserve the TRUNK process".into());
    }
    Ok(())
}

/// child_init(PROC_MAIN): fork the TRUNK process (if trunks are configured).
pub fn fork() -> Result<(), String> {
    let Some(trunks) = TRUNKS.get() else { return Ok(()) };
    // SAFETY: core function, called from the main process in child_init(PROC_MAIN).
    let pid = unsafe { fork_process(PROC_NOCHLDINIT, c"TRUNK".as_ptr(), 1) };
    match pid {
        p if p < 0 => Err("trunk: cannot fork the TRUNK process".into()),
        0 => run(trunks.clone()),
        _ => Ok(()),
    }
}

/// The TRUNK process: never returns.
fn run(trunks: Vec<Trunk>) -> ! {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
    match rt {
        Ok(rt) => rt.block_on(serve(trunks)),
        Err(e) => kerr!("trunk: cannot start the TRUNK process's runtime: {e}"),
    }
    // Only if the status socket could not be made: stay, quietly (exiting would stop Kamailio).
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

async fn serve(trunks: Vec<Trunk>) {
    let listener = match address().and_then(|a| std::os::unix::net::UnixListener::bind_addr(&a)).and_then(|l| {
        l.set_nonblocking(true)?;
        tokio::net::UnixListener::from_std(l)
    }) {
        Ok(l) => l,
        Err(e) => {
            kerr!("trunk: cannot open the status socket: {e}");
            return;
        }
    };
    // The link tasks run as long as the process; nothing ever sends stop.
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let running = match host::start(trunks, stop).await {
        Ok(r) => {
            kinfo!("trunk: {} trunk(s) relaying", r.len());
            Ok(r)
        }
        Err(e) => {
            kerr!("trunk: {e}; no trunk runs until Kamailio restarts");
            Err(e)
        }
    };
    loop {
        let stream = crate::randpay::ipc::accept_own_user(&listener, "trunk").await;
        let answer = match &running {
            Ok(r) => Answer::Running { trunks: r.iter().map(|t| t.status()).collect() },
            Err(e) => Answer::Failed { reason: e.clone() },
        };
        let (r, mut w) = stream.into_split();
        let mut line = String::new();
        let _ = tokio::time::timeout(STATUS_TIMEOUT, tokio::io::BufReader::new(r).read_line(&mut line)).await;
        let mut out = serde_json::to_vec(&answer).unwrap_or_default();
        out.push(b'\n');
        let _ = tokio::time::timeout(STATUS_TIMEOUT, w.write_all(&out)).await;
    }
}

/// `privateness.trunks` (RPC process): ask the TRUNK process, within a deadline.
pub fn status() -> Result<Answer, String> {
    if TRUNKS.get().is_none() {
        return Err("no trunks: set modparam(\"privateness\", \"trunk_config\", …)".into());
    }
    let addr = address().map_err(|e| e.to_string())?;
    let s = crate::randpay::ipc::connect_within(&addr, STATUS_TIMEOUT).map_err(|e| format!("the TRUNK process is not reachable: {e}"))?;
    s.set_read_timeout(Some(STATUS_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(STATUS_TIMEOUT)).map_err(|e| e.to_string())?;
    (&s).write_all(b"status\n").map_err(|e| format!("the TRUNK process: {e}"))?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).map_err(|e| format!("the TRUNK process did not answer in time: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("the TRUNK process sent a malformed answer: {e}"))
}

/// For `emc_trunk_select()` (any process): the Lua `on_trunk` hook's choice
/// among the configured trunks, as the SIP URI of the peer address its relay
/// owns. None without trunks, hook or answer (a failing script is logged).
pub fn choose(number: &str, caller: &str) -> Option<String> {
    let trunks = TRUNKS.get()?;
    let ctx = ness_core::hooks::TrunkCtx { number: number.to_owned(), caller: caller.to_owned(), trunks: trunks.iter().map(|t| t.name.clone()).collect() };
    let name = match crate::hooks::with_hooks(|h| h.on_trunk(&ctx))? {
        Ok(Some(name)) => name,
        Ok(None) => return None,
        Err(e) => {
            kwarn!("{e}; no trunk chosen for {number}");
            return None;
        }
    };
    let t = trunks.iter().find(|t| t.name == name)?;
    Some(format!("sip:{}:{}", t.ports.owned, t.ports.sip.first().copied().unwrap_or(5060)))
}
