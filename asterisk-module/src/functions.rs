//! The dialplan functions: `EMC_ENUM`, `EMC_ENUM_QUERY`, `EMC_ENUM_RESULT` and
//! `EMC_NVS`. Each read callback is fenced against panics, counted as in flight
//! (so unload waits for it), and never blocks longer than the lookup deadline;
//! what the value is comes from ness_core::enumer::dialplan.
//!
//! Channel variables set after each call (when there is a channel):
//! `EMC_ENUM_STATUS` (EMC_ENUM, EMC_ENUM_QUERY) and `EMC_NVS_STATUS` (EMC_NVS):
//! `FOUND`, `NOTFOUND`, `NODEFAIL` (node down or too slow, nothing cached) or
//! `INVALID` (bad arguments or not an E.164 number).

use std::ffi::{CStr, c_char, c_int};
use std::sync::atomic::{AtomicU64, Ordering};

use ness_core::enumer::dialplan::{self, LookupArgs, ResultIndex, ServiceFilter};
use ness_core::enumer::{AnswerSource, E164, EnumAnswer};

use crate::channel::{self, Autoservice, MAX_QUERIES, Query};
use crate::engine::{Engine, bump};
use crate::ffi::{
    AST_STATIC_DOC, Global, ast_channel, ast_custom_function, ast_string_field_mgr, ast_vector_ptr,
};
use crate::log::{adbg, awarn, fence};
use crate::{Busy, engine};

/// Longest NVS value (Emercoin allows 20 KiB) plus the terminating NUL.
const NVS_VALUE_MAX: usize = 20 * 1024 + 1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Found,
    NotFound,
    NodeFail,
    Invalid,
    /// The Lua `on_enum` hook refused the call (EMC_REJECT_CODE, EMC_REJECT_REASON).
    Rejected,
}

impl Status {
    fn text(self) -> &'static CStr {
        match self {
            Status::Found => c"FOUND",
            Status::NotFound => c"NOTFOUND",
            Status::NodeFail => c"NODEFAIL",
            Status::Invalid => c"INVALID",
            Status::Rejected => c"REJECTED",
        }
    }
}

/// Copy `value` into Asterisk's buffer (truncated to fit, NUL-terminated).
///
/// # Safety
/// `buf` has room for `len` bytes.
unsafe fn put(buf: *mut c_char, len: usize, value: &[u8]) -> bool {
    if buf.is_null() || len == 0 {
        return false;
    }
    let n = value.len().min(len - 1);
    // SAFETY: per the caller, and n < len.
    unsafe {
        std::ptr::copy_nonoverlapping(value.as_ptr(), buf as *mut u8, n);
        *buf.add(n) = 0;
    }
    n == value.len()
}

/// The argument text Asterisk passes (a writable copy of what is between the parentheses).
unsafe fn args_of(data: *mut c_char) -> String {
    if data.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated string from the core.
        unsafe { CStr::from_ptr(data) }
            .to_string_lossy()
            .into_owned()
    }
}

/// Record the outcome on the channel, and mark the channel as using the module.
unsafe fn set_status(chan: *mut ast_channel, var: &CStr, status: Status) {
    if !chan.is_null() {
        // SAFETY: the channel of the current callback, not locked here.
        unsafe {
            channel::attach(chan);
            channel::set_var(chan, var, status.text());
        }
    }
}

/// An answer for `number`: from the cache on this thread, else through the
/// module thread with the channel under autoservice.
fn resolve(
    chan: *mut ast_channel,
    engine: &Engine,
    what: &str,
    number: &E164,
) -> Result<std::sync::Arc<EnumAnswer>, Status> {
    let c = &engine.counters;
    bump(&c.lookups);
    if let Some(answer) = engine.cached(number) {
        bump(&c.cache_hits);
        return Ok(answer);
    }
    // SAFETY: the channel of the current callback (or null), not locked here.
    let _media = unsafe { Autoservice::start(chan) };
    match engine.lookup(number) {
        Ok(l) => {
            match &l.source {
                AnswerSource::Node => bump(&c.node_lookups),
                AnswerSource::Cache => bump(&c.cache_hits),
                AnswerSource::Stale(why) => {
                    bump(&c.stale_answers);
                    awarn!("{what}({number}): node failed ({why}); using the answer cached before");
                }
            }
            Ok(l.answer)
        }
        Err(e) => {
            bump(&c.node_failures);
            awarn!("{what}({number}): {e}");
            Err(Status::NodeFail)
        }
    }
}

fn number_of(engine: &Engine, what: &str, text: &str) -> Result<E164, Status> {
    E164::parse(text).map_err(|e| {
        bump(&engine.counters.bad_arguments);
        awarn!("{what}: {text:?} is not an E.164 number ({e})");
        Status::Invalid
    })
}

fn count_outcome(engine: &Engine, found: bool) {
    bump(if found {
        &engine.counters.found
    } else {
        &engine.counters.not_found
    });
}

// ---- EMC_ENUM ------------------------------------------------------------------------

fn emc_enum(chan: *mut ast_channel, text: &str) -> (Status, String) {
    let Some(engine) = engine() else {
        return (Status::NodeFail, String::new());
    };
    let args = match LookupArgs::parse(text) {
        Ok(a) => a,
        Err(e) => {
            bump(&engine.counters.bad_arguments);
            awarn!("EMC_ENUM({text}): {e}");
            return (Status::Invalid, String::new());
        }
    };
    let number = match number_of(&engine, "EMC_ENUM", &args.number) {
        Ok(n) => n,
        Err(s) => return (s, String::new()),
    };
    match resolve(chan, &engine, "EMC_ENUM", &number) {
        Ok(answer) => {
            let value = dialplan::lookup_value(&answer, &args);
            let found = if args.count {
                value != "0"
            } else {
                !value.is_empty()
            };
            count_outcome(&engine, found);
            adbg!("EMC_ENUM({text}) = {value:?}");
            (
                if found {
                    Status::Found
                } else {
                    Status::NotFound
                },
                value,
            )
        }
        Err(s) => (
            s,
            if args.count {
                "-1".to_owned()
            } else {
                String::new()
            },
        ),
    }
}

unsafe extern "C" fn read_emc_enum(
    chan: *mut ast_channel,
    _cmd: *const c_char,
    data: *mut c_char,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    let _busy = Busy::enter();
    fence("EMC_ENUM", -1, || unsafe {
        let (status, value) = emc_enum(chan, &args_of(data));
        set_status(chan, c"EMC_ENUM_STATUS", status);
        put(buf, len, value.as_bytes());
        if status == Status::Invalid { -1 } else { 0 }
    })
}

// ---- EMC_ENUM_QUERY / EMC_ENUM_RESULT ------------------------------------------------

static QUERY_IDS: AtomicU64 = AtomicU64::new(1);

fn emc_enum_query(chan: *mut ast_channel, text: &str) -> (Status, Option<u64>) {
    let Some(engine) = engine() else {
        return (Status::NodeFail, None);
    };
    if chan.is_null() {
        awarn!("EMC_ENUM_QUERY needs a channel (its results are kept on the channel)");
        return (Status::Invalid, None);
    }
    let (number, service) = match dialplan::parse_query_args(text) {
        Ok(a) => a,
        Err(e) => {
            bump(&engine.counters.bad_arguments);
            awarn!("EMC_ENUM_QUERY({text}): {e}");
            return (Status::Invalid, None);
        }
    };
    let number = match number_of(&engine, "EMC_ENUM_QUERY", &number) {
        Ok(n) => n,
        Err(s) => return (s, None),
    };
    let (status, uris) = match resolve(chan, &engine, "EMC_ENUM_QUERY", &number) {
        Ok(answer) => {
            let mut uris = dialplan::results(&answer, &service);
            // The on_enum hook may reorder, drop, add or reject (a failing script: as found).
            // SAFETY: the channel of the current callback, not locked here.
            let caller = unsafe { crate::randpay::host::func(chan, "CALLERID(num)") }.unwrap_or_default();
            let mut rejected = false;
            match crate::hooks::on_enum(&number, &caller, service.as_match(), &uris) {
                crate::hooks::Outcome::Keep => {}
                crate::hooks::Outcome::Route(routes) => uris = routes.into_iter().filter(|u| dialplan::dialplan_safe(u)).collect(),
                crate::hooks::Outcome::Reject(code, reason) => {
                    // SAFETY: as above.
                    unsafe {
                        channel::set_var(chan, c"EMC_REJECT_CODE", &crate::config::cstring(&code.to_string()));
                        channel::set_var(chan, c"EMC_REJECT_REASON", &crate::config::cstring(&reason));
                    }
                    // An id with no results, as for a failed lookup.
                    uris.clear();
                    rejected = true;
                }
            }
            count_outcome(&engine, !uris.is_empty());
            let status = match (rejected, uris.is_empty()) {
                (true, _) => Status::Rejected,
                (false, true) => Status::NotFound,
                (false, false) => Status::Found,
            };
            (status, uris)
        }
        // Like ENUMQUERY, a failed lookup still gives an id with no results.
        Err(s) => (s, Vec::new()),
    };
    let id = QUERY_IDS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the channel of the current callback, not locked here.
    let stored = unsafe {
        channel::with_state(chan, |state| {
            if state.queries.len() >= MAX_QUERIES {
                state.queries.remove(0);
            }
            state.queries.push(Query { id, service, uris });
        })
    };
    if stored.is_none() {
        awarn!("EMC_ENUM_QUERY: cannot keep results on the channel (out of memory)");
        return (Status::NodeFail, None);
    }
    (status, Some(id))
}

unsafe extern "C" fn read_emc_enum_query(
    chan: *mut ast_channel,
    _cmd: *const c_char,
    data: *mut c_char,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    let _busy = Busy::enter();
    fence("EMC_ENUM_QUERY", -1, || unsafe {
        let (status, id) = emc_enum_query(chan, &args_of(data));
        set_status(chan, c"EMC_ENUM_STATUS", status);
        match id {
            Some(id) => {
                put(buf, len, id.to_string().as_bytes());
                0
            }
            None => {
                put(buf, len, b"");
                -1
            }
        }
    })
}

fn emc_enum_result(chan: *mut ast_channel, text: &str) -> Option<String> {
    if chan.is_null() {
        awarn!("EMC_ENUM_RESULT needs the channel EMC_ENUM_QUERY ran on");
        return None;
    }
    let (id, index) = match dialplan::parse_result_args(text) {
        Ok(a) => a,
        Err(e) => {
            awarn!("EMC_ENUM_RESULT({text}): {e}");
            return None;
        }
    };
    // SAFETY: the channel of the current callback, not locked here.
    let value = unsafe {
        channel::with_state(chan, |state| {
            let q = state.queries.iter().find(|q| q.id == id)?;
            Some(match index {
                ResultIndex::Count => q.uris.len().to_string(),
                ResultIndex::Nth(n) => q
                    .uris
                    .get(n - 1)
                    .map(|u| dialplan::shown(u, &q.service, false).to_owned())
                    .unwrap_or_default(),
            })
        })
    }
    .flatten();
    if value.is_none() {
        awarn!(
            "EMC_ENUM_RESULT: no results with id {id} on this channel (use the id EMC_ENUM_QUERY returned)"
        );
    }
    value
}

unsafe extern "C" fn read_emc_enum_result(
    chan: *mut ast_channel,
    _cmd: *const c_char,
    data: *mut c_char,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    let _busy = Busy::enter();
    fence("EMC_ENUM_RESULT", -1, || unsafe {
        channel::attach(chan);
        match emc_enum_result(chan, &args_of(data)) {
            Some(v) => {
                put(buf, len, v.as_bytes());
                0
            }
            None => {
                put(buf, len, b"");
                -1
            }
        }
    })
}

// ---- EMC_NVS ------------------------------------------------------------------------------

fn emc_nvs(chan: *mut ast_channel, text: &str) -> (Status, Vec<u8>) {
    let Some(engine) = engine() else {
        return (Status::NodeFail, Vec::new());
    };
    let name = text.trim();
    if name.is_empty() || name.len() > 512 {
        bump(&engine.counters.bad_arguments);
        awarn!("EMC_NVS: an NVS name has 1 to 512 bytes, e.g. EMC_NVS(dns:example.emc)");
        return (Status::Invalid, Vec::new());
    }
    bump(&engine.counters.nvs_reads);
    // SAFETY: the channel of the current callback (or null), not locked here.
    let _media = unsafe { Autoservice::start(chan) };
    match engine.name_show(name) {
        Ok(Some(entry)) => (Status::Found, entry.value.as_bytes().to_vec()),
        Ok(None) => {
            awarn!("EMC_NVS({name}): no such name (or it expired)");
            (Status::NotFound, Vec::new())
        }
        Err(e) => {
            bump(&engine.counters.node_failures);
            awarn!("EMC_NVS({name}): {e}");
            (Status::NodeFail, Vec::new())
        }
    }
}

unsafe extern "C" fn read_emc_nvs(
    chan: *mut ast_channel,
    _cmd: *const c_char,
    data: *mut c_char,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    let _busy = Busy::enter();
    fence("EMC_NVS", -1, || unsafe {
        let text = args_of(data);
        let (status, mut value) = emc_nvs(chan, &text);
        // A NUL would silently end the value in the dialplan.
        if let Some(at) = value.iter().position(|&b| b == 0) {
            awarn!(
                "EMC_NVS({}): the value holds a NUL byte; it is cut there",
                text.trim()
            );
            value.truncate(at);
        }
        set_status(chan, c"EMC_NVS_STATUS", status);
        if !put(buf, len, &value) {
            awarn!(
                "EMC_NVS({}): the value ({} bytes) was cut to {} bytes",
                text.trim(),
                value.len(),
                len.saturating_sub(1)
            );
        }
        if status == Status::Invalid { -1 } else { 0 }
    })
}

// ---- registration tables -----------------------------------------------------------------

const fn acf(
    name: &'static CStr,
    synopsis: &'static CStr,
    desc: &'static CStr,
    syntax: &'static CStr,
    arguments: &'static CStr,
    read: crate::ffi::acf_read_fn,
    read_max: usize,
) -> ast_custom_function {
    ast_custom_function {
        name: name.as_ptr(),
        field_mgr_pool: std::ptr::null_mut(),
        synopsis: synopsis.as_ptr(),
        desc: desc.as_ptr(),
        syntax: syntax.as_ptr(),
        arguments: arguments.as_ptr(),
        seealso: c"EMC_ENUM, EMC_ENUM_QUERY, EMC_ENUM_RESULT, EMC_NVS, ENUMLOOKUP".as_ptr(),
        field_mgr: ast_string_field_mgr {
            last_alloc: std::ptr::null(),
            embedded_pool: std::ptr::null_mut(),
            string_fields: ast_vector_ptr {
                elems: std::ptr::null_mut(),
                max: 0,
                current: 0,
            },
        },
        docsrc: AST_STATIC_DOC,
        read: Some(read),
        read2: None,
        read_max,
        write: None,
        mod_: std::ptr::null_mut(),
        escalates: 0,
        acflist_next: std::ptr::null_mut(),
        since: c"res_privateness 0.1".as_ptr(),
        provided_by: c"res_privateness".as_ptr(),
    }
}

pub static EMC_ENUM: Global<ast_custom_function> = Global::new(acf(
    c"EMC_ENUM",
    c"ENUM lookup from Emercoin NVS, like ENUMLOOKUP",
    c"Returns the URI of the best NAPTR (RFC 3403 order, then preference) for the number from its trusted Emercoin ENUM records, scheme stripped like ENUMLOOKUP; with option c the count of matching NAPTRs; with u the full URI; with record N the Nth. Sets EMC_ENUM_STATUS to FOUND, NOTFOUND, NODEFAIL or INVALID. URIs that would split dialplan arguments are never returned. Default service is sip (pjsip means sip; ALL means any).",
    c"EMC_ENUM(number[,service[,options[,record]]])",
    c"number: E.164, + and - allowed. service: sip (default), iax2, ..., ALL. options: c = count, u = full URI. record: 1-based.",
    read_emc_enum,
    0,
));

pub static EMC_ENUM_QUERY: Global<ast_custom_function> = Global::new(acf(
    c"EMC_ENUM_QUERY",
    c"Start an Emercoin ENUM query, like ENUMQUERY",
    c"Resolves the number and keeps every matching URI on the channel; returns an id for EMC_ENUM_RESULT. Sets EMC_ENUM_STATUS.",
    c"EMC_ENUM_QUERY(number[,service])",
    c"number: E.164. service: sip (default), iax2, ..., ALL.",
    read_emc_enum_query,
    0,
));

pub static EMC_ENUM_RESULT: Global<ast_custom_function> = Global::new(acf(
    c"EMC_ENUM_RESULT",
    c"Read a result of EMC_ENUM_QUERY, like ENUMRESULT",
    c"Returns the Nth URI (1-based, scheme stripped unless the service was ALL) of the query with this id, or the count for getnum.",
    c"EMC_ENUM_RESULT(id,resultnum)",
    c"id: what EMC_ENUM_QUERY returned. resultnum: 1..n or getnum.",
    read_emc_enum_result,
    0,
));

pub static EMC_NVS: Global<ast_custom_function> = Global::new(acf(
    c"EMC_NVS",
    c"The value of an Emercoin NVS name",
    c"Returns the current value of any live NVS name (read from the node, not cached); empty with a warning when the name does not exist. Sets EMC_NVS_STATUS to FOUND, NOTFOUND, NODEFAIL or INVALID.",
    c"EMC_NVS(name)",
    c"name: an NVS name, e.g. dns:example.emc or enum:15551234567:0.",
    read_emc_nvs,
    NVS_VALUE_MAX,
));

// ---- EMC_TRUNK ---------------------------------------------------------------------------

/// `EMC_TRUNK(number)`: the Lua `on_trunk` hook's choice among the Skywire
/// trunks of trunk_config, by name (empty: no trunks, no hook, nil, or a
/// failing script, which is logged).
unsafe extern "C" fn read_emc_trunk(
    chan: *mut ast_channel,
    _cmd: *const c_char,
    data: *mut c_char,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    let _busy = Busy::enter();
    fence("EMC_TRUNK", -1, || unsafe {
        let number = args_of(data).trim().to_owned();
        let names = engine().and_then(|e| e.trunk_statuses()).unwrap_or_default().into_iter().map(|t| t.name).collect::<Vec<_>>();
        let caller = if chan.is_null() { None } else { crate::randpay::host::func(chan, "CALLERID(num)") }.unwrap_or_default();
        let chosen = crate::hooks::on_trunk(&number, &caller, names).unwrap_or_default();
        put(buf, len, chosen.as_bytes());
        0
    })
}

pub static EMC_TRUNK: Global<ast_custom_function> = Global::new(acf(
    c"EMC_TRUNK",
    c"The Skywire trunk for a number, chosen by the Lua on_trunk hook",
    c"Returns the name of the trunk (a [[trunk]] of trunk_config) that the on_trunk(ctx) hook of the [hooks] script picks for the number; empty without trunks, hook or answer. Map the name to your PJSIP endpoint in the dialplan.",
    c"EMC_TRUNK(number)",
    c"number: the number to carry, e.g. ${EXTEN}.",
    read_emc_trunk,
    0,
));

/// Every function, in registration order.
pub fn all() -> [&'static Global<ast_custom_function>; 6] {
    [&EMC_ENUM, &EMC_ENUM_QUERY, &EMC_ENUM_RESULT, &EMC_NVS, &EMC_TRUNK, &crate::randpay::function::RANDPAY]
}

/// What EMC_ENUM would give for `number` with `service`, for the CLI.
pub fn preview(answer: &EnumAnswer, service: &str) -> (String, usize) {
    let filter = ServiceFilter::parse(service);
    let all = dialplan::results(answer, &filter);
    (
        all.first()
            .map(|u| dialplan::shown(u, &filter, false).to_owned())
            .unwrap_or_default(),
        all.len(),
    )
}
