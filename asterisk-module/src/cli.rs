//! CLI commands: `privateness show status`, `privateness lookup <number>
//! [service]` (tab-completes numbers in the cache) and `privateness cache flush`
//! (`privateness show trunks` is in trunk.rs, `randpay show …` in randpay/cli.rs).
//! Asterisk completes the command words itself.

use std::ffi::{CStr, c_char, c_int};
use std::fmt::Write as _;
use std::ptr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ness_core::enumer::{AnswerSource, E164};

use crate::config::cstring;
use crate::ffi::{
    self, CLI_FAILURE, CLI_GENERATE, CLI_INIT, CLI_SHOWUSAGE, CLI_SUCCESS, Global, ast_cli_args,
    ast_cli_entry, cli_handler,
};
use crate::log::fence;
use crate::{Busy, engine};

/// Print to the CLI client.
pub(crate) fn out(fd: c_int, text: &str) {
    let c = cstring(text);
    // SAFETY: exported printer; fixed "%s" format with one NUL-terminated string.
    unsafe { ffi::ast_cli(fd, c"%s".as_ptr(), c.as_ptr()) };
}

/// The words typed (argv), as text.
pub(crate) unsafe fn argv(a: &ast_cli_args) -> Vec<String> {
    (0..a.argc.max(0) as usize)
        // SAFETY: argv has argc NUL-terminated strings.
        .map(|i| {
            unsafe { CStr::from_ptr(*a.argv.add(i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Shared CLI_INIT step: name and usage (static strings; Asterisk copies the name).
pub(crate) unsafe fn init(e: *mut ast_cli_entry, command: &'static CStr, usage: &'static CStr) -> *mut c_char {
    // SAFETY: the entry being registered.
    unsafe {
        (*e).command = command.as_ptr();
        (*e).usage = usage.as_ptr();
    }
    ptr::null_mut()
}

fn seconds(d: std::time::Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

fn status_text() -> String {
    let Some(engine) = engine() else {
        return "res_privateness is not running\n".to_owned();
    };
    // Copied out: the lock must not be held while waiting for the node below.
    let Some((cfg, node, cached)) = engine.with_current(|c| {
        (
            c.resolver.config().clone(),
            c.node.clone(),
            c.resolver.cache_len(),
        )
    }) else {
        return "res_privateness has no resolver\n".to_owned();
    };
    let t0 = Instant::now();
    let reach = match engine.block_count() {
        Ok(height) => format!(
            "reachable, block {height} ({} ms)",
            t0.elapsed().as_millis()
        ),
        Err(e) => format!("NOT reachable: {e}"),
    };
    let c = &engine.counters;
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "res_privateness: ENUM from Emercoin NVS, up {}",
        seconds(engine.started.elapsed())
    );
    let _ = writeln!(
        s,
        "Node:      {} ({:?}), RPC timeout {} ms: {reach}",
        node.url,
        node.credentials,
        node.timeout.as_millis()
    );
    let _ = writeln!(
        s,
        "Trust:     verifiers {}, {}{}",
        if cfg.trust.verifiers.is_empty() {
            "(none)".to_owned()
        } else {
            cfg.trust.verifiers.join(", ")
        },
        if cfg.trust.require_signature {
            "signatures required"
        } else {
            "UNSIGNED RECORDS COUNT (test networks only)"
        },
        if cfg.privatenumer_layout {
            ", privatenumer layout on"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "Lookups:   deadline {} ms, on node failure {}",
        cfg.lookup_timeout.as_millis(),
        if cfg.serve_stale {
            format!("stale answers (up to {} s)", cfg.stale_ttl.as_secs())
        } else {
            "fail".to_owned()
        }
    );
    let _ = writeln!(
        s,
        "Cache:     {} of {} numbers, TTL cap {} s, negative TTL {} s",
        cached,
        cfg.cache_capacity,
        cfg.ttl_cap.as_secs(),
        cfg.negative_ttl.as_secs()
    );
    let _ = writeln!(
        s,
        "Counters:  lookups {} (cache {}, node {}, stale {}), found {}, not found {}, node failures {}, bad arguments {}, NVS reads {}, refused (overload) {}",
        g(&c.lookups),
        g(&c.cache_hits),
        g(&c.node_lookups),
        g(&c.stale_answers),
        g(&c.found),
        g(&c.not_found),
        g(&c.node_failures),
        g(&c.bad_arguments),
        g(&c.nvs_reads),
        g(&c.overloads)
    );
    s
}

fn lookup_text(number: &str, service: &str) -> String {
    let Some(engine) = engine() else {
        return "res_privateness is not running\n".to_owned();
    };
    let n = match E164::parse(number) {
        Ok(n) => n,
        Err(e) => return format!("{number:?} is not an E.164 number: {e}\n"),
    };
    let t0 = Instant::now();
    let l = match engine.lookup(&n) {
        Ok(l) => l,
        Err(e) => return format!("{n}: lookup failed: {e}\n"),
    };
    let took = t0.elapsed();
    let a = &l.answer;
    let mut s = String::new();
    let source = match &l.source {
        AnswerSource::Cache => "cache".to_owned(),
        AnswerSource::Node => "node".to_owned(),
        AnswerSource::Stale(e) => format!("STALE cache entry (node failed: {e})"),
    };
    let _ = writeln!(
        s,
        "{n}: {} NAPTR(s) from {} record(s), {source}, {} us",
        a.naptrs.len(),
        a.records.len(),
        took.as_micros()
    );
    for (i, r) in a.records.iter().enumerate() {
        let _ = writeln!(
            s,
            "  record {i}: {} owner {} ttl {} s, signed by {}{}",
            r.name,
            r.owner,
            r.ttl,
            r.signed_by.as_deref().unwrap_or("-"),
            if r.problems.is_empty() {
                String::new()
            } else {
                format!(", problems: {}", r.problems.join("; "))
            }
        );
    }
    for x in &a.ignored {
        let _ = writeln!(s, "  ignored {} (owner {}): {}", x.name, x.owner, x.reason);
    }
    let _ = writeln!(s, "  {:>5} {:>5} {:<14} URI", "order", "pref", "service");
    for naptr in &a.naptrs {
        let _ = writeln!(
            s,
            "  {:>5} {:>5} {:<14} {}",
            naptr.order,
            naptr.preference,
            naptr.service,
            naptr
                .uri
                .as_deref()
                .unwrap_or("(regexp does not match the number)")
        );
    }
    let (value, count) = crate::functions::preview(a, service);
    let _ = writeln!(s, "EMC_ENUM({n},{service}) = {value:?}  (c: {count})");
    s
}

unsafe extern "C" fn cli_status(
    e: *mut ast_cli_entry,
    cmd: c_int,
    a: *mut ast_cli_args,
) -> *mut c_char {
    let _busy = Busy::enter();
    fence("privateness show status", CLI_FAILURE, || unsafe {
        match cmd {
            CLI_INIT => init(e, c"privateness show status", c"Usage: privateness show status\n       Node reachability, settings, cache and counters of res_privateness.\n"),
            CLI_GENERATE => ptr::null_mut(),
            _ => {
                let a = &*a;
                if a.argc != 3 {
                    return CLI_SHOWUSAGE;
                }
                out(a.fd, &status_text());
                CLI_SUCCESS
            }
        }
    })
}

/// The n-th cached number that starts with `word`, as an Asterisk-allocated string.
fn complete_number(word: &str, n: usize) -> *mut c_char {
    let Some(engine) = engine() else {
        return ptr::null_mut();
    };
    let mut numbers: Vec<String> = engine
        .with_current(|c| c.resolver.cached_numbers())
        .unwrap_or_default()
        .iter()
        .map(|d| format!("+{d}"))
        .collect();
    numbers.sort();
    let word = word.trim();
    let Some(hit) = numbers
        .iter()
        .filter(|c| c.starts_with(word) || c[1..].starts_with(word))
        .nth(n)
    else {
        return ptr::null_mut();
    };
    // SAFETY: Asterisk frees completions with its allocator, so allocate with it.
    unsafe {
        let p = ffi::__ast_malloc(
            hit.len() + 1,
            c"cli.rs".as_ptr(),
            0,
            c"complete_number".as_ptr(),
        ) as *mut u8;
        if p.is_null() {
            return ptr::null_mut();
        }
        ptr::copy_nonoverlapping(hit.as_ptr(), p, hit.len());
        *p.add(hit.len()) = 0;
        p as *mut c_char
    }
}

unsafe extern "C" fn cli_lookup(
    e: *mut ast_cli_entry,
    cmd: c_int,
    a: *mut ast_cli_args,
) -> *mut c_char {
    let _busy = Busy::enter();
    fence("privateness lookup", CLI_FAILURE, || unsafe {
        match cmd {
            CLI_INIT => init(e, c"privateness lookup", c"Usage: privateness lookup <number> [service]\n       Resolve a number from Emercoin NVS (through the cache) and show its records,\n       the NAPTRs in order, what was ignored and why, and what EMC_ENUM returns.\n"),
            CLI_GENERATE => {
                let a = &*a;
                if a.pos != 2 || a.word.is_null() {
                    return ptr::null_mut();
                }
                complete_number(&CStr::from_ptr(a.word).to_string_lossy(), a.n.max(0) as usize)
            }
            _ => {
                let a = &*a;
                let words = argv(a);
                if !(3..=4).contains(&words.len()) {
                    return CLI_SHOWUSAGE;
                }
                out(a.fd, &lookup_text(&words[2], words.get(3).map_or("sip", String::as_str)));
                CLI_SUCCESS
            }
        }
    })
}

unsafe extern "C" fn cli_flush(
    e: *mut ast_cli_entry,
    cmd: c_int,
    a: *mut ast_cli_args,
) -> *mut c_char {
    let _busy = Busy::enter();
    fence("privateness cache flush", CLI_FAILURE, || unsafe {
        match cmd {
            CLI_INIT => init(e, c"privateness cache flush", c"Usage: privateness cache flush\n       Forget every cached answer, verifier and revocation list.\n"),
            CLI_GENERATE => ptr::null_mut(),
            _ => {
                let a = &*a;
                if a.argc != 3 {
                    return CLI_SHOWUSAGE;
                }
                match engine() {
                    Some(engine) => out(a.fd, &format!("Cache flushed ({} numbers)\n", engine.flush())),
                    None => out(a.fd, "res_privateness is not running\n"),
                }
                CLI_SUCCESS
            }
        }
    })
}

unsafe extern "C" fn cli_reload_hooks(
    e: *mut ast_cli_entry,
    cmd: c_int,
    a: *mut ast_cli_args,
) -> *mut c_char {
    let _busy = Busy::enter();
    fence("privateness reload hooks", CLI_FAILURE, || unsafe {
        match cmd {
            CLI_INIT => init(e, c"privateness reload hooks", c"Usage: privateness reload hooks\n       Read the Lua hooks script ([hooks] script) again; one that does not compile is refused and the running one stays.\n"),
            CLI_GENERATE => ptr::null_mut(),
            _ => {
                let a = &*a;
                if a.argc != 3 {
                    return CLI_SHOWUSAGE;
                }
                match crate::hooks::reload() {
                    Ok(what) => out(a.fd, &format!("{what}\n")),
                    Err(e) => out(a.fd, &format!("Not reloaded: {e}\n")),
                }
                CLI_SUCCESS
            }
        }
    })
}

pub(crate) const fn entry(summary: &'static CStr, handler: cli_handler) -> ast_cli_entry {
    ast_cli_entry {
        cmda: [ptr::null(); 16],
        summary: summary.as_ptr(),
        usage: ptr::null(),
        inuse: 0,
        module: ptr::null_mut(),
        full_cmd: ptr::null_mut(),
        cmdlen: 0,
        args: 0,
        command: ptr::null(),
        handler: Some(handler),
        list_next: ptr::null_mut(),
    }
}

pub static STATUS: Global<ast_cli_entry> =
    Global::new(entry(c"Show res_privateness status", cli_status));
pub static LOOKUP: Global<ast_cli_entry> =
    Global::new(entry(c"Resolve a number from Emercoin ENUM", cli_lookup));
pub static FLUSH: Global<ast_cli_entry> =
    Global::new(entry(c"Empty the Emercoin ENUM cache", cli_flush));
pub static RELOAD_HOOKS: Global<ast_cli_entry> =
    Global::new(entry(c"Reload the Lua hooks script", cli_reload_hooks));

pub fn all() -> [&'static Global<ast_cli_entry>; 7] {
    [&STATUS, &LOOKUP, &FLUSH, &RELOAD_HOOKS, &crate::trunk::SHOW, &crate::randpay::cli::CALLS, &crate::randpay::cli::LEDGER]
}
