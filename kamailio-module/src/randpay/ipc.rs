//! How Kamailio's processes reach the RANDPAY process. Calls, their meters, the
//! node client and the ledger live in that one process (process.rs); SIP
//! workers, the dialog and tm timer processes and the RPC process send it one
//! JSON line per request over a Unix stream socket and read one line back.
//!
//! Events (a call ended, a ticket from an INFO's 200 OK) get no answer: the
//! caller writes its line and goes on ([`send`]).
//!
//! The socket is in the abstract namespace, named after Kamailio's main pid (no
//! file to clean up, one per Kamailio instance), and the RANDPAY process only
//! answers peers running as its own user. Callers use blocking I/O with a
//! deadline: Kamailio processes are single-threaded and must never hang.

use std::io::{BufRead, BufReader, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ness_core::randpay::ledger::CallSummary;
use ness_core::randpay::session::CallView;
use serde::{Deserialize, Serialize};

/// One request to the RANDPAY process.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Payee: an initial INVITE from `caller` (the From user), with the ticket
    /// it carries, and the script's own tariff line if it gave one.
    Invite {
        call_id: String,
        number: String,
        #[serde(default)]
        caller: String,
        tariff: Option<String>,
        ticket: Option<String>,
    },
    /// Payee: the dialog was answered (2xx).
    Answered { call_id: String, h_entry: u32, h_id: u32 },
    /// Either role: the call ended (BYE, failure, timeout).
    Ended { call_id: String, reason: String },
    /// Payee: the `Randpay-Ticket` of an INFO's 200 OK.
    Ticket { call_id: String, ticket: String },
    /// Payer: a `Randpay-Challenge` to pay.
    Pay { call_id: String, number: String, challenge: String },
    /// Payer with `randpay_payee_url`: fetch and pay the first challenge on the
    /// payee's side channel before the INVITE leaves, and keep paying there.
    PayFirst { call_id: String, number: String },
    /// RPC `randpay.stop`: the payer pays nothing more for this call (`all`: any).
    Stop { call_id: String },
    /// RPC `randpay.calls`.
    Calls,
    /// RPC `randpay.ledger`: one call, or the most recent ones.
    Ledger { call_id: Option<String>, limit: u32 },
}

impl Request {
    /// An event: the RANDPAY process takes it and sends no answer.
    pub fn is_event(&self) -> bool {
        // (Answered stays a request: an Ended sent later by another process must
        // not overtake it, and a call answered unpaid is ended before it goes on.)
        matches!(self, Request::Ended { .. } | Request::Ticket { .. })
    }
}

/// The answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Reply 402 with this `Randpay-Challenge` value.
    Challenge { header: String },
    /// Route the call; the dialog module ends it by itself this long after the
    /// answer unless the metering moves the time (a backstop).
    Proceed { backstop_secs: u32 },
    /// Reply with this code and reason.
    Refuse { code: u16, reason: String },
    /// Answer with (or, for PayFirst, add to the INVITE) this `Randpay-Ticket` value.
    Ticket { header: String },
    Done,
    Calls { role: String, calls: Vec<CallView> },
    Ledger { calls: Vec<CallSummary> },
    Error { message: String },
}

/// Kamailio's main pid, recorded in mod_init (before any fork).
pub static MAIN_PID: AtomicU32 = AtomicU32::new(0);

/// The socket's abstract name.
pub fn address() -> std::io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("privateness-randpay-{}", MAIN_PID.load(Ordering::Relaxed)))
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("the RANDPAY process is not reachable: {0}")]
    Connect(std::io::Error),
    #[error("the RANDPAY process did not answer in time or closed the connection: {0}")]
    Io(std::io::Error),
    #[error("the RANDPAY process sent a malformed answer: {0}")]
    Malformed(String),
}

/// This process's connection (pid, stream), reused between requests.
static CONNECTION: Mutex<Option<(u32, BufReader<UnixStream>)>> = Mutex::new(None);

fn exchange(conn: &mut BufReader<UnixStream>, line: &[u8], timeout: Duration) -> Result<Reply, IpcError> {
    let s = conn.get_mut();
    s.set_write_timeout(Some(timeout)).map_err(IpcError::Io)?;
    s.set_read_timeout(Some(timeout)).map_err(IpcError::Io)?;
    s.write_all(line).map_err(IpcError::Io)?;
    let mut answer = String::new();
    match conn.read_line(&mut answer) {
        Ok(0) => Err(IpcError::Io(std::io::ErrorKind::UnexpectedEof.into())),
        Ok(_) => serde_json::from_str(&answer).map_err(|e| IpcError::Malformed(e.to_string())),
        Err(e) => Err(IpcError::Io(e)),
    }
}

/// Connect to the RANDPAY process's abstract socket, waiting at most `timeout`
/// (a blocking connect would wait for as long as its backlog stays full).
pub(crate) fn connect_within(addr: &SocketAddr, timeout: Duration) -> std::io::Result<UnixStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let name = addr.as_abstract_name().ok_or_else(|| std::io::Error::other("not an abstract socket name"))?;
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_un is valid; the abstract name starts after a NUL byte.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if name.len() + 1 > sa.sun_path.len() {
        return Err(std::io::Error::other("socket name too long"));
    }
    for (i, b) in name.iter().enumerate() {
        sa.sun_path[i + 1] = *b as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + name.len()) as libc::socklen_t;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        use std::os::fd::AsRawFd;
        // SAFETY: `sa` is a valid sockaddr_un of `len` bytes.
        let rc = unsafe { libc::connect(fd.as_raw_fd(), &sa as *const libc::sockaddr_un as *const libc::sockaddr, len) };
        if rc == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        // A full backlog: the process is busy; try again until the deadline.
        if e.raw_os_error() != Some(libc::EAGAIN) || std::time::Instant::now() >= deadline {
            return Err(e);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let s = UnixStream::from(fd);
    s.set_nonblocking(false)?;
    Ok(s)
}

/// Hand an event over (no answer comes), waiting at most `timeout` to write it.
/// A broken kept-open connection is replaced once.
pub fn send(req: &Request, timeout: Duration) -> Result<(), IpcError> {
    debug_assert!(req.is_event());
    let line = encode(req)?;
    on_connection(timeout, |conn| {
        let s = conn.get_mut();
        s.set_write_timeout(Some(timeout)).map_err(IpcError::Io)?;
        s.write_all(&line).map_err(IpcError::Io)
    })
}

fn encode(req: &Request) -> Result<Vec<u8>, IpcError> {
    let mut line = serde_json::to_vec(req).map_err(|e| IpcError::Malformed(e.to_string()))?;
    line.push(b'\n');
    Ok(line)
}

/// Send `req` and wait at most `timeout` for the answer. A broken kept-open
/// connection is replaced once.
pub fn call(req: &Request, timeout: Duration) -> Result<Reply, IpcError> {
    debug_assert!(!req.is_event());
    let line = encode(req)?;
    on_connection(timeout, |conn| exchange(conn, &line, timeout))
}

/// Run `f` on this process's connection (made if needed); once more on a fresh
/// connection if the kept one turned out broken.
fn on_connection<T>(timeout: Duration, mut f: impl FnMut(&mut BufReader<UnixStream>) -> Result<T, IpcError>) -> Result<T, IpcError> {
    let pid = std::process::id();
    let mut guard = CONNECTION.lock().unwrap_or_else(|p| p.into_inner());
    for attempt in 0..2 {
        let reuse = attempt == 0 && guard.as_ref().is_some_and(|(p, _)| *p == pid);
        if !reuse {
            if let Some(old) = guard.take() {
                // Inherited through fork (another process's socket) or broken: close only ours.
                if old.0 != pid {
                    std::mem::forget(old);
                }
            }
            let addr = address().map_err(IpcError::Connect)?;
            let s = connect_within(&addr, timeout).map_err(IpcError::Connect)?;
            *guard = Some((pid, BufReader::new(s)));
        }
        let Some((_, conn)) = guard.as_mut() else { continue };
        match f(conn) {
            Ok(r) => return Ok(r),
            // A timeout is final: resending could double a node call.
            Err(IpcError::Io(e)) if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut && attempt == 0 => {
                *guard = None;
            }
            Err(e) => {
                *guard = None;
                return Err(e);
            }
        }
    }
    Err(IpcError::Io(std::io::ErrorKind::BrokenPipe.into()))
}

/// The next connection on one of the module's local sockets from Kamailio's
/// own user (or root); others are refused and logged as `what`. An accept
/// error (e.g. out of descriptors) waits a little rather than spin.
pub async fn accept_own_user(listener: &tokio::net::UnixListener, what: &str) -> tokio::net::UnixStream {
    // SAFETY: plain libc getter.
    let me = unsafe { libc::geteuid() };
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(c) if c.uid() == me || c.uid() == 0 => return stream,
            other => crate::log::kwarn!("{what}: refused a local connection from {other:?} (not Kamailio's user)"),
        }
    }
}
