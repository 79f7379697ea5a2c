//! The module's own thread, its tokio runtime and the current resolver.
//!
//! Asterisk calls the module on its threads (channel PBX threads, CLI threads,
//! the main thread at boot). Those threads never touch tokio: a runtime handle,
//! a task wake-up or even the drop of a pooled HTTP connection there leaves a
//! thread-local destructor behind that keeps the `.so` mapped after `module
//! unload` (asterisk-abi.md §2.10; the fake host's test catches it). So:
//!
//! - `load` starts one thread with raw `pthread_create`; that thread builds the
//!   tokio runtime (two workers) and runs jobs from a queue. `unload` stops it and
//!   joins it with `pthread_join`, after which no module code runs anywhere.
//! - The resolver (and its node client) is created, swapped on reload and
//!   finally dropped only on that thread. Asterisk threads borrow it under a read
//!   lock for a cache read and never hold a reference of their own.
//! - Anything that needs the node is a job; the caller waits on a Mutex/Condvar
//!   pair with a deadline (futexes, no thread-locals).
//! - RANDPAY metering (crate::randpay::Metering) is built with the first
//!   resolver and, like it, lives and dies on this thread; Asterisk threads send
//!   it closures (`randpay`, `randpay_detached`) that run on the runtime.
//! - Skywire trunks (crate::trunk) are started, restarted on a reload that
//!   changed their file, and dropped on this thread too; Asterisk threads only
//!   read their counters.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use ness_core::enumer::{
    CacheCarry, E164, EnumAnswer, Lookup, ResolveError, Resolver, ResolverConfig,
};
use ness_core::nvs::{NameEntry, NodeConfig, NvsClient, NvsError};

use crate::log::{aerr, anotice, awarn};
use crate::randpay::Metering;
use crate::randpay::settings::RandpayConf;
use crate::trunk::{TrunkFile, TrunkSet};
use ness_core::randpay::RandpayRole;

/// Jobs waiting beyond this are refused: the node is far slower than the calls.
const QUEUE_LIMIT: usize = 4096;
/// How long a caller waits beyond the lookup deadline for the job to report.
const REPLY_GRACE: Duration = Duration::from_millis(250);

/// A one-shot answer a caller waits for.
pub struct Reply<T> {
    slot: Mutex<Option<T>>,
    ready: Condvar,
}

impl<T> Reply<T> {
    fn new() -> Arc<Self> {
        Arc::new(Reply {
            slot: Mutex::new(None),
            ready: Condvar::new(),
        })
    }

    fn fill(&self, value: T) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
        self.ready.notify_all();
    }

    /// The value, or None when `limit` passed first.
    fn wait(&self, limit: Duration) -> Option<T> {
        let guard = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = self
            .ready
            .wait_timeout_while(guard, limit, |v| v.is_none())
            .unwrap_or_else(|p| p.into_inner());
        guard.take()
    }
}

type Res = Arc<Resolver<NvsClient>>;

/// What a new resolver should be built from.
pub struct Build {
    /// The trunk file, if `trunk_config` is set.
    pub trunks: Option<crate::trunk::TrunkFile>,
    pub node: NodeConfig,
    pub config: ResolverConfig,
    pub randpay: RandpayConf,
}

/// Work for the RANDPAY metering: given it (None when the role is off), the future to run.
type RandpayJob = Box<dyn FnOnce(Option<Arc<Metering>>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The resolver in use and the node settings it was built from.
pub struct Current {
    pub resolver: Res,
    pub node: NodeConfig,
}

enum Job {
    Lookup {
        number: E164,
        reply: Arc<Reply<Result<Lookup, ResolveError>>>,
    },
    Nvs {
        name: String,
        reply: Arc<Reply<Result<Option<NameEntry>, NvsError>>>,
    },
    BlockCount {
        reply: Arc<Reply<Result<u64, NvsError>>>,
    },
    /// Build a resolver and make it current; the reply says what became of the cache.
    Build {
        build: Box<Build>,
        reply: Arc<Reply<Result<String, String>>>,
    },
    /// Check the node and log the outcome (after load and reload; nobody waits).
    Probe,
    Randpay(RandpayJob),
}

struct Queue {
    jobs: VecDeque<Job>,
    stop: bool,
}

/// Module-wide counters for `privateness show status` (since load).
#[derive(Default)]
pub struct Counters {
    pub lookups: AtomicU64,
    pub cache_hits: AtomicU64,
    pub node_lookups: AtomicU64,
    pub stale_answers: AtomicU64,
    pub found: AtomicU64,
    pub not_found: AtomicU64,
    pub node_failures: AtomicU64,
    pub bad_arguments: AtomicU64,
    pub nvs_reads: AtomicU64,
    pub overloads: AtomicU64,
}

pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    current: RwLock<Option<Current>>,
    /// Cloned and dropped only on the module thread.
    metering: Mutex<Option<Arc<Metering>>>,
    /// Started, replaced and dropped only on the module thread.
    trunks: Mutex<Option<TrunkSet>>,
}

/// The running engine: owns the thread.
pub struct Engine {
    shared: Arc<Shared>,
    thread: Mutex<Option<libc::pthread_t>>,
    pub counters: Counters,
    pub started: Instant,
}

/// Why the engine did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the module thread (pthread_create: {0})")]
    Thread(std::io::Error),
    #[error("{0}")]
    Build(String),
    #[error("the module thread did not build the resolver within 10 s")]
    Timeout,
}

/// Bounded waits of the module thread's own work (building a resolver).
const BUILD_WAIT: Duration = Duration::from_secs(10);

extern "C" fn thread_main(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the Box<Arc<Shared>> leaked by `Engine::start`, taken once.
    let shared: Box<Arc<Shared>> = unsafe { Box::from_raw(arg as *mut Arc<Shared>) };
    crate::log::fence("module thread", (), || run(&shared));
    std::ptr::null_mut()
}

impl Shared {
    /// The current resolver, cloned: only on the module thread.
    fn resolver(&self) -> Option<Res> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.resolver.clone())
    }

    /// Queue a job; false if the queue is full or stopping (the job is dropped:
    /// it holds nothing tokio-related).
    fn submit(&self, job: Job) -> bool {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.stop || q.jobs.len() >= QUEUE_LIMIT {
            return false;
        }
        q.jobs.push_back(job);
        drop(q);
        self.wake.notify_one();
        true
    }
}

fn not_running() -> NvsError {
    NvsError::Config("res_privateness has no resolver (see the log at load)".into())
}

fn run(shared: &Shared) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ness-ast")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            aerr!(
                "cannot create the runtime: {e}; lookups will fail until the module is loaded again"
            );
            fail_all(shared);
            return;
        }
    };
    loop {
        let job = {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break Some(job);
                }
                if q.stop {
                    break None;
                }
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let Some(job) = job else { break };
        let resolver = shared.resolver();
        match (job, resolver) {
            (Job::Lookup { number, reply }, Some(r)) => {
                runtime.spawn(async move { reply.fill(r.lookup(&number).await) });
            }
            (Job::Nvs { name, reply }, Some(r)) => {
                runtime.spawn(async move { reply.fill(r.source().name_show(&name).await) });
            }
            (Job::BlockCount { reply }, Some(r)) => {
                runtime.spawn(async move { reply.fill(r.source().get_block_count().await) });
            }
            (Job::Probe, Some(r)) => {
                runtime.spawn(async move {
                    match r.source().get_block_count().await {
                        Ok(height) => {
                            anotice!("node {} reachable, block {height}", r.source().endpoint())
                        }
                        Err(e) => awarn!(
                            "node not reachable: {e}; lookups fail{} until it is",
                            if r.config().serve_stale {
                                " (or serve stale answers)"
                            } else {
                                ""
                            }
                        ),
                    }
                });
            }
            (Job::Build { mut build, reply }, old) => {
                let (trunks, first) = (build.trunks.take(), old.is_none());
                let installed = {
                    let _guard = runtime.enter();
                    install(shared, *build, old)
                };
                // On load a trunk that cannot start declines the module; on a
                // reload the new settings stand and the log says what failed.
                reply.fill(installed.and_then(|what| match apply_trunks(&runtime, shared, trunks) {
                    Ok(t) => Ok(what + &t),
                    Err(e) if first => Err(e),
                    Err(e) => Ok(format!("{what}; {e}; no trunk runs until a reload fixes it")),
                }));
            }
            (Job::Randpay(f), _) => {
                let m = shared.metering.lock().unwrap_or_else(|p| p.into_inner()).clone();
                runtime.spawn(f(m));
            }
            (Job::Lookup { reply, .. }, None) => reply.fill(Err(ResolveError::Node(not_running()))),
            (Job::Nvs { reply, .. }, None) => reply.fill(Err(not_running())),
            (Job::BlockCount { reply }, None) => reply.fill(Err(not_running())),
            (Job::Probe, None) => {}
        }
    }
    // The resolver's node client owns tokio objects: drop it here, in the runtime,
    // then the runtime (which waits for its tasks and joins its threads).
    if let Some(t) = shared.trunks.lock().unwrap_or_else(|p| p.into_inner()).take() {
        stop_trunks(&runtime, t);
    }
    let _guard = runtime.enter();
    drop(shared.metering.lock().unwrap_or_else(|p| p.into_inner()).take());
    drop(
        shared
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take(),
    );
    drop(_guard);
    drop(runtime);
}

/// Stop trunks and wait until their ports are free (module thread).
fn stop_trunks(runtime: &tokio::runtime::Runtime, set: TrunkSet) {
    let _ = set.stop.send(true);
    runtime.block_on(async move {
        for t in set.running {
            t.stop().await;
        }
    });
}

/// Make the running trunks those of `wanted`: unchanged text keeps them (and
/// their carriers and counters); otherwise the old ones stop first (they hold
/// the ports) and the new ones start. Returns a note for the log.
fn apply_trunks(runtime: &tokio::runtime::Runtime, shared: &Shared, wanted: Option<TrunkFile>) -> Result<String, String> {
    let mut set = shared.trunks.lock().unwrap_or_else(|p| p.into_inner());
    match (&*set, &wanted) {
        (None, None) => return Ok(String::new()),
        (Some(s), Some(w)) if s.is_from(w) => return Ok(format!("; {} trunk(s) kept", s.running.len())),
        _ => {}
    }
    if let Some(old) = set.take() {
        stop_trunks(runtime, old);
    }
    let Some(w) = wanted else { return Ok("; trunks stopped".into()) };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = runtime.block_on(ness_core::trunk::host::start(w.trunks, stopped))?;
    let note = format!("; {} trunk(s) from {}", running.len(), w.path.display());
    anotice!("Skywire trunks: {} trunk(s) from {} started", running.len(), w.path.display());
    *set = Some(TrunkSet { path: w.path, text: w.text, running, stop });
    Ok(note)
}

/// Build a resolver from `build` and make it current. Against the same node the
/// cache carries over (see `Resolver::reconfigured`).
fn install(shared: &Shared, build: Build, old: Option<Res>) -> Result<String, String> {
    let client = NvsClient::new(&build.node).map_err(|e| e.to_string())?;
    let randpay_note = {
        let mut metering = shared.metering.lock().unwrap_or_else(|p| p.into_inner());
        if old.is_none() {
            if build.randpay.role() != RandpayRole::Off {
                *metering = Some(Metering::start(&build.node, build.randpay.clone())?);
            }
            ""
        } else {
            let running = metering.as_ref().map(|m| m.conf.lines.clone()).unwrap_or_default();
            let wanted = if build.randpay.role() == RandpayRole::Off { Vec::new() } else { build.randpay.lines.clone() };
            if running != wanted {
                "; [randpay] changed: it applies at the next module load (unload, then load, once no metered call is up)"
            } else {
                ""
            }
        }
    };
    let same_node = shared
        .current
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|c| c.node == build.node);
    let (resolver, what) = match old {
        Some(old) if same_node => {
            let (r, carry) = old.reconfigured(client, build.config);
            let what = match carry {
                CacheCarry::Kept => format!("cache kept ({} cached)", r.cache_len()),
                CacheCarry::Resized => format!("cache kept and resized ({} cached)", r.cache_len()),
                CacheCarry::Flushed => "trust settings changed: cache emptied".to_owned(),
            };
            (r, what)
        }
        Some(_) => (
            Resolver::new(client, build.config),
            "node settings changed: new node client, cache emptied".to_owned(),
        ),
        None => (
            Resolver::new(client, build.config),
            "new resolver".to_owned(),
        ),
    };
    let previous = shared
        .current
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .replace(Current {
            resolver: Arc::new(resolver),
            node: build.node,
        });
    // Dropped here, on the module thread (with the caller's `old` clone).
    drop(previous);
    Ok(format!("{what}{randpay_note}"))
}

/// Without a runtime every queued job fails at once rather than time out.
fn fail_all(shared: &Shared) {
    loop {
        let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(job) = q.jobs.pop_front() {
            match job {
                Job::Lookup { reply, .. } => reply.fill(Err(ResolveError::Node(not_running()))),
                Job::Nvs { reply, .. } => reply.fill(Err(not_running())),
                Job::BlockCount { reply } => reply.fill(Err(not_running())),
                Job::Build { reply, .. } => reply.fill(Err("the module has no runtime".into())),
                Job::Probe | Job::Randpay(_) => {}
            }
        }
        if q.stop {
            return;
        }
        drop(shared.wake.wait(q).unwrap_or_else(|p| p.into_inner()));
    }
}

impl Engine {
    /// Start the thread and build the first resolver. On error nothing is left running.
    pub fn start(build: Build) -> Result<Engine, StartError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            current: RwLock::new(None),
            metering: Mutex::new(None),
            trunks: Mutex::new(None),
        });
        let arg = Box::into_raw(Box::new(shared.clone())) as *mut c_void;
        let mut thread: libc::pthread_t = 0;
        // SAFETY: plain pthread_create with default attributes; `arg` is reclaimed by
        // thread_main, or here if the thread was not created.
        let rc = unsafe { libc::pthread_create(&mut thread, std::ptr::null(), thread_main, arg) };
        if rc != 0 {
            // SAFETY: the thread does not exist, so the box is still ours.
            drop(unsafe { Box::from_raw(arg as *mut Arc<Shared>) });
            return Err(StartError::Thread(std::io::Error::from_raw_os_error(rc)));
        }
        let reply = Reply::new();
        shared.submit(Job::Build {
            build: Box::new(build),
            reply: reply.clone(),
        });
        match reply.wait(BUILD_WAIT) {
            Some(Ok(_)) => {}
            other => {
                stop_thread(&shared, thread);
                return Err(match other {
                    Some(Err(e)) => StartError::Build(e),
                    _ => StartError::Timeout,
                });
            }
        }
        Ok(Engine {
            shared,
            thread: Mutex::new(Some(thread)),
            counters: Counters::default(),
            started: Instant::now(),
        })
    }

    /// Stop the thread and wait for it (and the runtime's workers) to exit.
    pub fn stop(&self) {
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            stop_thread(&self.shared, thread);
        }
    }

    /// Borrow the current resolver and node settings. `f` must not wait for the
    /// engine (a reload waits for this lock).
    pub fn with_current<R>(&self, f: impl FnOnce(&Current) -> R) -> Option<R> {
        self.shared
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(f)
    }

    /// Apply new settings (see `install`); says what became of the cache.
    pub fn reconfigure(&self, build: Build) -> Result<String, String> {
        let reply = Reply::new();
        if !self.shared.submit(Job::Build {
            build: Box::new(build),
            reply: reply.clone(),
        }) {
            return Err("the module thread is not accepting work".into());
        }
        reply
            .wait(BUILD_WAIT)
            .unwrap_or_else(|| Err("the module thread did not answer within 10 s".into()))
    }

    /// The fresh cached answer, on the caller's thread.
    pub fn cached(&self, number: &E164) -> Option<Arc<EnumAnswer>> {
        self.with_current(|c| c.resolver.cached(number)).flatten()
    }

    fn deadline(&self, pick: impl FnOnce(&Current) -> Duration) -> Duration {
        self.with_current(pick).unwrap_or(Duration::from_secs(1)) + REPLY_GRACE
    }

    /// Resolve through the module thread, waiting at most the lookup deadline
    /// (plus a little for the report).
    pub fn lookup(&self, number: &E164) -> Result<Lookup, ResolveError> {
        let limit = self.deadline(|c| c.resolver.config().lookup_timeout);
        let reply = Reply::new();
        if !self.shared.submit(Job::Lookup {
            number: number.clone(),
            reply: reply.clone(),
        }) {
            bump(&self.counters.overloads);
            return Err(ResolveError::Node(NvsError::Config(format!(
                "more than {QUEUE_LIMIT} lookups are waiting for the node; refusing more"
            ))));
        }
        reply
            .wait(limit)
            .unwrap_or(Err(ResolveError::Deadline(limit)))
    }

    /// Read one NVS name (no cache), bounded by the RPC timeout.
    pub fn name_show(&self, name: &str) -> Result<Option<NameEntry>, NvsError> {
        self.node_job(|reply| Job::Nvs { name: name.to_owned(), reply })
    }

    pub fn block_count(&self) -> Result<u64, NvsError> {
        self.node_job(|reply| Job::BlockCount { reply })
    }

    /// Hand a node request to the module thread and wait for it, at most the
    /// node's deadline.
    fn node_job<T>(&self, job: impl FnOnce(Arc<Reply<Result<T, NvsError>>>) -> Job) -> Result<T, NvsError> {
        let limit = self.deadline(|c| c.node.timeout);
        let reply = Reply::new();
        if !self.shared.submit(job(reply.clone())) {
            bump(&self.counters.overloads);
            return Err(NvsError::Config("too many requests are waiting for the node".into()));
        }
        reply.wait(limit).unwrap_or_else(|| Err(NvsError::Config(format!("no answer within {} ms", limit.as_millis()))))
    }

    /// Log whether the node answers (without waiting for it).
    pub fn probe_node(&self) {
        self.shared.submit(Job::Probe);
    }

    /// Run `f` on the RANDPAY metering (None: the role is off) on the module
    /// thread's runtime and wait at most `limit` for its result.
    pub fn randpay<T, F, Fut>(&self, limit: Duration, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(Option<Arc<Metering>>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let reply = Reply::new();
        let filled = reply.clone();
        let job: RandpayJob = Box::new(move |m| Box::pin(async move { filled.fill(f(m).await) }));
        if !self.shared.submit(Job::Randpay(job)) {
            bump(&self.counters.overloads);
            return None;
        }
        reply.wait(limit)
    }

    /// The running trunks' status (counters only: no tokio object is touched
    /// or dropped here). None without trunks.
    pub fn trunk_statuses(&self) -> Option<Vec<ness_core::trunk::TrunkStatus>> {
        let set = self.shared.trunks.lock().unwrap_or_else(|p| p.into_inner());
        set.as_ref().map(|s| s.running.iter().map(|t| t.status()).collect())
    }

    /// The payer's side-channel deadline (2 s when RANDPAY is off).
    pub fn randpay_side_timeout(&self) -> Duration {
        let m = self.shared.metering.lock().unwrap_or_else(|p| p.into_inner());
        m.as_ref().map_or(Duration::from_secs(2), |m| m.conf.core.side_timeout)
    }

    /// As `randpay`, without waiting (from datastore destroy callbacks).
    pub fn randpay_detached(&self, f: impl FnOnce(Option<Arc<Metering>>) + Send + 'static) {
        let job: RandpayJob = Box::new(move |m| Box::pin(async move { f(m) }));
        if !self.shared.submit(Job::Randpay(job)) {
            awarn!("randpay: the module thread is not taking work; a call end was not recorded");
        }
    }

    /// Empty the cache; returns how many numbers it held.
    pub fn flush(&self) -> usize {
        self.with_current(|c| {
            let n = c.resolver.cache_len();
            c.resolver.flush();
            n
        })
        .unwrap_or(0)
    }
}

fn stop_thread(shared: &Shared, thread: libc::pthread_t) {
    shared.queue.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
    shared.wake.notify_all();
    // SAFETY: the thread was created joinable by `Engine::start` and is joined once.
    let rc = unsafe { libc::pthread_join(thread, std::ptr::null_mut()) };
    if rc != 0 {
        awarn!("joining the module thread failed (error {rc})");
    } else {
        anotice!("module thread stopped");
    }
}
