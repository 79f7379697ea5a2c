//! Per-process state. Kamailio forks its workers after `mod_init`; nothing that
//! owns threads or sockets may exist before the fork. Each process that resolves
//! (the SIP workers, and the RPC process for `privateness.lookup`) builds its own
//! current-thread tokio runtime (no extra OS threads), node client and resolver
//! cache — in `child_init`, or on first use, checked against the pid so a copy
//! inherited through fork is never used. Counters the RPC process reports live
//! in Kamailio shared memory, allocated in `mod_init`.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use ness_core::enumer::{AnswerSource, E164, Lookup, ResolveError, Resolver, ResolverConfig};
use ness_core::nvs::{NameEntry, NodeConfig, NvsClient, NvsError};
use ness_core::settings::ModuleSettings;

use crate::ffi;
use crate::log::{MOD_NAME, kerr};

/// modparams land here (main process, while the cfg is parsed).
pub static SETTINGS: LazyLock<Mutex<ModuleSettings>> = LazyLock::new(|| Mutex::new(ModuleSettings::default()));

/// Checked in mod_init, inherited by every process.
pub static CONFIG: OnceLock<(NodeConfig, ResolverConfig)> = OnceLock::new();

/// Process slots for per-process figures (indexed by Kamailio's process_no).
pub const SLOTS: usize = 256;

/// Counters in shared memory: every process adds, the RPC process reads.
#[repr(C)]
pub struct SharedStats {
    pub lookups: AtomicU64,
    pub cache_hits: AtomicU64,
    pub node_lookups: AtomicU64,
    pub stale_answers: AtomicU64,
    pub found: AtomicU64,
    pub not_found: AtomicU64,
    pub node_failures: AtomicU64,
    pub deadlines: AtomicU64,
    pub invalid_numbers: AtomicU64,
    pub nvs_gets: AtomicU64,
    /// Bumped by `privateness.cache_flush`; each process flushes when it sees a change.
    pub flush_generation: AtomicU64,
    /// Bumped by `privateness.reload_hooks`; each process reloads its script when it sees a change.
    pub hooks_generation: AtomicU64,
    /// Cache entries of each process.
    pub cache_entries: [AtomicU64; SLOTS],
}

static STATS: AtomicPtr<SharedStats> = AtomicPtr::new(std::ptr::null_mut());

/// Allocate the shared counters (mod_init, before fork). False if shm is exhausted.
pub fn init_shared_stats() -> bool {
    // SAFETY: _shm_root is the core's shm allocator table; xmallocxz returns zeroed
    // shared memory (all-zero is a valid SharedStats: atomics at 0).
    unsafe {
        let Some(alloc) = ffi::_shm_root.xmallocxz else { return false };
        let p = alloc(
            ffi::_shm_root.mem_block,
            std::mem::size_of::<SharedStats>(),
            c"worker.rs".as_ptr(),
            c"init_shared_stats".as_ptr(),
            line!(),
            MOD_NAME.as_ptr(),
        ) as *mut SharedStats;
        STATS.store(p, Ordering::SeqCst);
        !p.is_null()
    }
}

pub fn stats() -> Option<&'static SharedStats> {
    let p = STATS.load(Ordering::Relaxed);
    // SAFETY: allocated once in mod_init, never freed, shared by all processes.
    (!p.is_null()).then(|| unsafe { &*p })
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What one process owns.
pub struct Worker {
    pid: u32,
    runtime: tokio::runtime::Runtime,
    resolver: Arc<Resolver<NvsClient>>,
    flush_seen: u64,
}

static WORKER: Mutex<Option<Worker>> = Mutex::new(None);

impl Worker {
    fn new(node: &NodeConfig, config: &ResolverConfig) -> Result<Worker, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot create the per-process runtime: {e}"))?;
        let client = {
            let _guard = runtime.enter();
            NvsClient::new(node).map_err(|e| e.to_string())?
        };
        let resolver = Arc::new(Resolver::new(client, config.clone()));
        let flush_seen = stats().map_or(0, |s| s.flush_generation.load(Ordering::Relaxed));
        Ok(Worker { pid: std::process::id(), runtime, resolver, flush_seen })
    }

    /// Resolve a number: cache first without entering the runtime, else the node,
    /// bounded by the lookup deadline. Counts the outcome in shared memory.
    pub fn lookup(&mut self, number: &E164) -> Result<Lookup, ResolveError> {
        let result = match self.resolver.cached(number) {
            Some(answer) => Ok(Lookup { answer, source: AnswerSource::Cache, fresh_until: None }),
            None => self.runtime.block_on(self.resolver.lookup(number)),
        };
        if let Some(s) = stats() {
            bump(&s.lookups);
            match &result {
                Ok(l) => {
                    match l.source {
                        AnswerSource::Cache => bump(&s.cache_hits),
                        AnswerSource::Node => bump(&s.node_lookups),
                        AnswerSource::Stale(_) => bump(&s.stale_answers),
                    }
                    bump(if l.answer.is_found() { &s.found } else { &s.not_found });
                }
                Err(ResolveError::Deadline(_)) => bump(&s.deadlines),
                Err(ResolveError::Node(_)) => bump(&s.node_failures),
            }
            // SAFETY: process_no is a core global set before this process started.
            let slot = unsafe { std::ptr::read_volatile(&raw const ffi::process_no) } as usize % SLOTS;
            s.cache_entries[slot].store(self.resolver.cache_len() as u64, Ordering::Relaxed);
        }
        result
    }

    /// Read any NVS name (no cache), bounded by the RPC timeout.
    pub fn name_show(&self, name: &str) -> Result<Option<NameEntry>, NvsError> {
        if let Some(s) = stats() {
            bump(&s.nvs_gets);
        }
        self.runtime.block_on(self.resolver.source().name_show(name))
    }

    pub fn block_count(&self) -> Result<u64, NvsError> {
        self.runtime.block_on(self.resolver.source().get_block_count())
    }

    pub fn flush(&self) {
        self.resolver.flush();
    }
}

/// Run `f` with this process's worker, creating it if needed.
pub fn with_worker<R>(f: impl FnOnce(&mut Worker) -> R) -> Option<R> {
    let (node, config) = CONFIG.get()?;
    let pid = std::process::id();
    let mut guard = WORKER.lock().unwrap_or_else(|p| p.into_inner());
    if guard.as_ref().is_some_and(|w| w.pid != pid) {
        // Inherited through fork: its runtime belongs to another process. Leak it
        // rather than run its destructor here.
        if let Some(w) = guard.take() {
            std::mem::forget(w);
        }
    }
    if guard.is_none() {
        match Worker::new(node, config) {
            Ok(w) => *guard = Some(w),
            Err(e) => {
                kerr!("{e}");
                return None;
            }
        }
    }
    let w = guard.as_mut()?;
    if let Some(s) = stats() {
        let generation = s.flush_generation.load(Ordering::Relaxed);
        if generation != w.flush_seen {
            w.flush();
            w.flush_seen = generation;
        }
    }
    Some(f(w))
}
