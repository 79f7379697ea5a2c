//! A fake Asterisk for CI, where no Asterisk can be installed: it exports the
//! `ast_*` symbols res_privateness.so imports (linked with -rdynamic, so the
//! module's undefined symbols resolve against this executable, as they do
//! against `asterisk`), `dlopen`s the module, and lets a test drive it line by
//! line on stdin, the way the real loader, dialplan and CLI would:
//!
//! | command | what it does |
//! |---|---|
//! | `dlopen PATH` | dlopen; prints the registered module (name, key, build sum) |
//! | `load` / `reload` / `unload` | the loader's calls; unload is refused while the use count is > 0 |
//! | `dlclose` | dlclose; says whether the destructor unregistered and whether the file is still mapped |
//! | `chan new [TECH [EXTEN]]` / `chan hangup ID` | a channel (`Local` or `PJSIP`, extension `s`); hangup frees its datastores (destroy callbacks) |
//! | `chan answer ID` / `chan show ID` | answer it now; its uniqueid, hangup request, references, applications run |
//! | `set CHAN NAME VALUE` / `func CHAN EXPR VALUE` | a variable, or what `ast_func_read(EXPR)` gives (e.g. `PJSIP_HEADER(read,X)`) |
//! | `read CHAN FUNC ARGS` | a function read (`CHAN` is `-` for none): `rc=… value=…` |
//! | `exec CHAN APP ARGS` | run a registered application: `rc=…` |
//! | `var CHAN NAME` | a channel variable the module set |
//! | `cli WORDS…` | a CLI command: its output, then a line `.` |
//! | `complete WORDS… \| WORD` | tab completion of `WORD` after `WORDS` |
//! | `state` | functions and CLI entries registered, use count, datastores alive |
//! | `logs` | log lines since the last `logs`, then `.` |
//!
//! The module is driven from this program's main thread, like Asterisk's; its
//! own threads may look channels up by uniqueid, read their answer time and
//! request a hangup (as RANDPAY metering does), which is recorded for `chan show`.
//! `PJSIPHangup` is known to `pbx_findapp`; running it is recorded, and returns -1.
#![allow(non_camel_case_types, clippy::missing_safety_doc)]

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

// ---- the layouts the module shares with Asterisk (see asterisk-module/src/ffi.rs) ----

#[repr(C)]
pub struct ast_module_info {
    self_: *mut c_void,
    load: Option<unsafe extern "C" fn() -> c_int>,
    reload: Option<unsafe extern "C" fn() -> c_int>,
    unload: Option<unsafe extern "C" fn() -> c_int>,
    name: *const c_char,
    description: *const c_char,
    key: *const c_char,
    flags: c_uint,
    buildopt_sum: [c_char; 33],
    load_pri: u8,
    requires: *const c_char,
    optional_modules: *const c_char,
    enhances: *const c_char,
    reserved: [*mut c_void; 4],
    support_level: c_int,
}

type ReadFn =
    unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_char, *mut c_char, usize) -> c_int;

#[repr(C)]
pub struct ast_custom_function {
    name: *const c_char,
    pool: *mut c_void,
    synopsis: *const c_char,
    desc: *const c_char,
    syntax: *const c_char,
    arguments: *const c_char,
    seealso: *const c_char,
    mgr: [usize; 5],
    docsrc: c_int,
    read: Option<ReadFn>,
    read2: *mut c_void,
    read_max: usize,
    write: *mut c_void,
    mod_: *mut c_void,
    escalates: c_uint,
    next: *mut c_void,
    since: *const c_char,
    provided_by: *const c_char,
}

#[repr(C)]
pub struct ast_cli_args {
    fd: c_int,
    argc: c_int,
    argv: *const *const c_char,
    line: *const c_char,
    word: *const c_char,
    pos: c_int,
    n: c_int,
}

type CliHandler = unsafe extern "C" fn(*mut ast_cli_entry, c_int, *mut ast_cli_args) -> *mut c_char;

#[repr(C)]
pub struct ast_cli_entry {
    cmda: [*const c_char; 16],
    summary: *const c_char,
    usage: *const c_char,
    inuse: c_int,
    module: *mut c_void,
    full_cmd: *mut c_char,
    cmdlen: c_int,
    args: c_int,
    command: *const c_char,
    handler: Option<CliHandler>,
    next: *mut c_void,
}

#[repr(C)]
pub struct ast_datastore_info {
    type_: *const c_char,
    duplicate: *mut c_void,
    destroy: Option<unsafe extern "C" fn(*mut c_void)>,
    fixup: *mut c_void,
    breakdown: *mut c_void,
}

#[repr(C)]
pub struct ast_datastore {
    uid: *const c_char,
    data: *mut c_void,
    info: *const ast_datastore_info,
    mod_: *mut c_void,
    inheritance: c_uint,
    next: *mut c_void,
}

#[repr(C)]
pub struct ast_variable {
    name: *const c_char,
    value: *const c_char,
    next: *mut ast_variable,
    file: *const c_char,
    lineno: c_int,
}

// ---- host state --------------------------------------------------------------------

pub struct Channel {
    vars: HashMap<String, String>,
    datastores: Vec<*mut ast_datastore>,
    locked: u32,
    autoservice: u32,
    /// What `ast_func_read` answers, by expression.
    funcs: HashMap<String, CString>,
    /// Applications the module ran on it (pbx_exec).
    execs: Vec<String>,
    hangupcause: c_int,
    /// Read by module threads (by raw pointer; never moved or freed).
    uniqueid: CString,
    exten: CString,
    tech: &'static TechHead,
    /// The answer time in microseconds since the epoch (0: not answered), as
    /// precise as Asterisk's own timeval.
    answered_usecs: AtomicI64,
    softhangup_cause: AtomicI32,
    refs: AtomicI32,
    /// Where the value of `pbx_builtin_getvar_helper` lives until the next call.
    getvar: Option<CString>,
}

#[repr(C)]
pub struct TechHead {
    type_: *const c_char,
    description: *const c_char,
}
// SAFETY: static strings.
unsafe impl Sync for TechHead {}

static TECH_LOCAL: TechHead = TechHead { type_: c"Local".as_ptr(), description: c"Local".as_ptr() };
static TECH_PJSIP: TechHead = TechHead { type_: c"PJSIP".as_ptr(), description: c"PJSIP".as_ptr() };
/// What `pbx_findapp("PJSIPHangup")` returns.
static PJSIP_HANGUP: u8 = 0;

type AppFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

#[derive(Default)]
struct Host {
    modules: Vec<*mut ast_module_info>,
    unregistered: Vec<*mut ast_module_info>,
    /// Use count of the (single) module self handle.
    usecount: i32,
    functions: HashMap<String, *mut ast_custom_function>,
    apps: HashMap<String, AppFn>,
    clis: Vec<(String, *mut ast_cli_entry)>,
    /// Live channels; hung-up ones are leaked, not freed (a module thread may
    /// still hold a reference, as it may in Asterisk).
    channels: HashMap<u32, &'static mut Channel>,
    next_chan: u32,
    logs: Vec<String>,
    cli_out: String,
    datastores_alive: i32,
    /// privateness.conf contents at the last load, for CONFIG_FLAG_FILEUNCHANGED.
    last_config: Option<String>,
    autoservice_calls: u32,
}

// SAFETY: only the main thread drives the module; module threads only log.
unsafe impl Send for Host {}

static HOST: Mutex<Option<Host>> = Mutex::new(None);

fn host<R>(f: impl FnOnce(&mut Host) -> R) -> R {
    let mut g = HOST.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(Host::default))
}

/// What the module reads as the `ast_module *`.
static SELF_TOKEN: u8 = 0;

unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        "(null)".into()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

fn conf_dir() -> PathBuf {
    PathBuf::from(std::env::var("FAKE_AST_CONFIG_DIR").expect("FAKE_AST_CONFIG_DIR"))
}

// ---- exported Asterisk API ------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_module_register(info: *mut ast_module_info) {
    unsafe { (*info).self_ = &SELF_TOKEN as *const u8 as *mut c_void };
    host(|h| h.modules.push(info));
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_module_unregister(info: *mut ast_module_info) {
    host(|h| {
        h.modules.retain(|m| *m != info);
        h.unregistered.push(info);
    });
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ast_custom_function_register(
    acf: *mut ast_custom_function,
    module: *mut c_void,
) -> c_int {
    let name = unsafe { text((*acf).name) };
    host(|h| {
        if h.functions.contains_key(&name) {
            h.logs.push(format!(
                "ERROR pbx_functions.c: Function {name} already registered."
            ));
            return -1;
        }
        unsafe {
            (*acf).mod_ = module;
            (*acf).docsrc = 1;
        }
        h.functions.insert(name, acf);
        0
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_custom_function_unregister(acf: *mut ast_custom_function) -> c_int {
    host(|h| {
        let before = h.functions.len();
        h.functions.retain(|_, a| *a != acf);
        if h.functions.len() < before { 0 } else { -1 }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ast_cli_register(e: *mut ast_cli_entry, module: *mut c_void) -> c_int {
    let mut args = ast_cli_args {
        fd: -1,
        argc: 0,
        argv: std::ptr::null(),
        line: std::ptr::null(),
        word: std::ptr::null(),
        pos: 0,
        n: 0,
    };
    let Some(handler) = (unsafe { (*e).handler }) else {
        return -1;
    };
    unsafe { handler(e, -2, &mut args) };
    let command = unsafe { text((*e).command) };
    if command == "(null)" || unsafe { (*e).usage.is_null() } {
        return -1;
    }
    host(|h| {
        if h.clis.iter().any(|(c, _)| *c == command) {
            return -1;
        }
        unsafe { (*e).module = module };
        h.clis.push((command, e));
        0
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_cli_unregister(e: *mut ast_cli_entry) -> c_int {
    host(|h| {
        let before = h.clis.len();
        h.clis.retain(|(_, x)| *x != e);
        if h.clis.len() < before { 0 } else { -1 }
    })
}

/// Variadic in C; the module always passes "%s" and one string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_cli(_fd: c_int, fmt: *const c_char, arg: *const c_char) {
    assert_eq!(
        unsafe { text(fmt) },
        "%s",
        "the module must not pass text as a format"
    );
    let s = unsafe { text(arg) };
    host(|h| h.cli_out.push_str(&s));
}

/// Variadic in C; the module always passes "%s\n" and one string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_log(
    level: c_int,
    file: *const c_char,
    _line: c_int,
    _func: *const c_char,
    fmt: *const c_char,
    arg: *const c_char,
) {
    let fmt = unsafe { text(fmt) };
    assert!(
        fmt == "%s\n" || fmt == "%s",
        "the module must not pass text as a format: {fmt:?}"
    );
    let name = [
        "DEBUG", "TRACE", "NOTICE", "WARNING", "ERROR", "VERBOSE", "DTMF",
    ]
    .get(level as usize)
    .copied()
    .unwrap_or("?");
    let line = format!(
        "{name} {}: {}",
        unsafe { text(file) },
        unsafe { text(arg) }.trim_end()
    );
    eprintln!("{line}");
    host(|h| h.logs.push(line));
}

#[unsafe(no_mangle)]
pub static option_debug: c_int = 0;

#[repr(transparent)]
pub struct ConstStr(*const c_char);
// SAFETY: points at a leaked, never-changed C string.
unsafe impl Sync for ConstStr {}

#[unsafe(no_mangle)]
pub static mut ast_config_AST_CONFIG_DIR: ConstStr = ConstStr(std::ptr::null());

/// A parsed config: each section's variables, as an owned linked list.
/// Boxed so the `next` pointers stay valid whatever the Vec does.
#[allow(clippy::vec_box)]
struct Config {
    sections: HashMap<String, Vec<Box<ast_variable>>>,
    _strings: Vec<CString>,
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_config_load2(
    filename: *const c_char,
    _who: *const c_char,
    flags: c_uint,
) -> *mut c_void {
    let path = conf_dir().join(unsafe { text(filename) });
    let Ok(content) = std::fs::read_to_string(&path) else {
        return std::ptr::null_mut();
    };
    let unchanged = host(|h| {
        let same = h.last_config.as_deref() == Some(content.as_str());
        h.last_config = Some(content.clone());
        same
    });
    if flags & 2 != 0 && unchanged {
        return usize::MAX as *mut c_void;
    }
    let mut strings = Vec::new();
    let mut sections: HashMap<String, Vec<Box<ast_variable>>> = HashMap::new();
    let mut section = String::new();
    for (i, raw) in content.lines().enumerate() {
        let line = raw.split(';').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[') {
            let Some(name) = s.strip_suffix(']') else {
                return (usize::MAX - 1) as *mut c_void;
            };
            section = name.to_owned();
            sections.entry(section.clone()).or_default();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return (usize::MAX - 1) as *mut c_void;
        };
        let (k, v) = (
            CString::new(k.trim()).unwrap(),
            CString::new(v.trim_start_matches('>').trim()).unwrap(),
        );
        sections.entry(section.clone()).or_default().push(Box::new(ast_variable {
            name: k.as_ptr(),
            value: v.as_ptr(),
            next: std::ptr::null_mut(),
            file: std::ptr::null(),
            lineno: i as c_int + 1,
        }));
        strings.push(k);
        strings.push(v);
    }
    for vars in sections.values_mut() {
        for i in (1..vars.len()).rev() {
            let next: *mut ast_variable = &mut *vars[i];
            vars[i - 1].next = next;
        }
    }
    Box::into_raw(Box::new(Config { sections, _strings: strings })) as *mut c_void
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_variable_browse(
    config: *const c_void,
    category: *const c_char,
) -> *mut ast_variable {
    let cfg = unsafe { &mut *(config as *mut Config) };
    cfg.sections
        .get_mut(&unsafe { text(category) })
        .and_then(|v| v.first_mut())
        .map_or(std::ptr::null_mut(), |v| &mut **v as *mut ast_variable)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_config_destroy(config: *mut c_void) {
    drop(unsafe { Box::from_raw(config as *mut Config) });
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pbx_builtin_setvar_helper(
    chan: *mut c_void,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    let (name, value) = unsafe { (text(name), text(value)) };
    if chan.is_null() {
        return 0;
    }
    let ch = unsafe { &mut *(chan as *mut Channel) };
    assert_eq!(
        ch.locked, 0,
        "setvar locks the channel itself: the module must not hold the lock"
    );
    ch.vars.insert(name, value);
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ast_datastore_alloc(
    info: *const ast_datastore_info,
    uid: *const c_char,
    module: *mut c_void,
    _f: *const c_char,
    _l: c_int,
    _fun: *const c_char,
) -> *mut ast_datastore {
    let uid = if uid.is_null() {
        std::ptr::null()
    } else {
        CString::new(unsafe { text(uid) }).unwrap().into_raw() as *const c_char
    };
    host(|h| {
        // Like Asterisk: a datastore owned by a module holds a reference to it.
        if !module.is_null() {
            h.usecount += 1;
        }
        h.datastores_alive += 1;
    });
    Box::into_raw(Box::new(ast_datastore {
        uid,
        data: std::ptr::null_mut(),
        info,
        mod_: module,
        inheritance: 0,
        next: std::ptr::null_mut(),
    }))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_datastore_free(ds: *mut ast_datastore) -> c_int {
    let ds = unsafe { Box::from_raw(ds) };
    if !ds.data.is_null()
        && let Some(destroy) = unsafe { (*ds.info).destroy }
    {
        unsafe { destroy(ds.data) };
    }
    if !ds.uid.is_null() {
        drop(unsafe { CString::from_raw(ds.uid as *mut c_char) });
    }
    host(|h| {
        if !ds.mod_.is_null() {
            h.usecount -= 1;
        }
        h.datastores_alive -= 1;
    });
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_channel_datastore_add(
    chan: *mut c_void,
    ds: *mut ast_datastore,
) -> c_int {
    let ch = unsafe { &mut *(chan as *mut Channel) };
    assert!(ch.locked > 0, "datastore_add without the channel lock");
    ch.datastores.push(ds);
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_channel_datastore_find(
    chan: *mut c_void,
    info: *const ast_datastore_info,
    uid: *const c_char,
) -> *mut ast_datastore {
    let ch = unsafe { &mut *(chan as *mut Channel) };
    assert!(ch.locked > 0, "datastore_find without the channel lock");
    let want = if uid.is_null() {
        None
    } else {
        Some(unsafe { text(uid) })
    };
    for &ds in &ch.datastores {
        let d = unsafe { &*ds };
        let got = if d.uid.is_null() {
            None
        } else {
            Some(unsafe { text(d.uid) })
        };
        if d.info == info && (want.is_none() || got == want) {
            return ds;
        }
    }
    std::ptr::null_mut()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ao2_lock(
    obj: *mut c_void,
    _how: c_int,
    _f: *const c_char,
    _fun: *const c_char,
    _l: c_int,
    _v: *const c_char,
) -> c_int {
    let ch = unsafe { &mut *(obj as *mut Channel) };
    assert_eq!(
        ch.locked, 0,
        "the module locked a channel twice (deadlock in Asterisk)"
    );
    ch.locked += 1;
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ao2_unlock(
    obj: *mut c_void,
    _f: *const c_char,
    _fun: *const c_char,
    _l: c_int,
    _v: *const c_char,
) -> c_int {
    let ch = unsafe { &mut *(obj as *mut Channel) };
    assert_eq!(ch.locked, 1, "unlock of a channel that is not locked");
    ch.locked -= 1;
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_autoservice_start(chan: *mut c_void) -> c_int {
    let ch = unsafe { &mut *(chan as *mut Channel) };
    assert_eq!(ch.locked, 0, "autoservice with the channel locked");
    ch.autoservice += 1;
    host(|h| h.autoservice_calls += 1);
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_autoservice_stop(chan: *mut c_void) -> c_int {
    let ch = unsafe { &mut *(chan as *mut Channel) };
    assert_eq!(ch.autoservice, 1, "autoservice stopped without a start");
    ch.autoservice -= 1;
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ast_malloc(
    size: usize,
    _f: *const c_char,
    _l: c_int,
    _fun: *const c_char,
) -> *mut c_void {
    unsafe { libc::malloc(size) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_register_application2(
    app: *const c_char,
    execute: Option<AppFn>,
    _synopsis: *const c_char,
    description: *const c_char,
    _module: *mut c_void,
) -> c_int {
    let name = unsafe { text(app) };
    assert!(!description.is_null());
    host(|h| {
        if h.apps.contains_key(&name) || execute.is_none() {
            h.logs.push(format!("ERROR pbx_app.c: Application '{name}' already registered"));
            return -1;
        }
        h.apps.insert(name, execute.unwrap());
        0
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_unregister_application(app: *const c_char) -> c_int {
    let name = unsafe { text(app) };
    host(|h| if h.apps.remove(&name).is_some() { 0 } else { -1 })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pbx_findapp(app: *const c_char) -> *mut c_void {
    if unsafe { text(app) } == "PJSIPHangup" {
        &PJSIP_HANGUP as *const u8 as *mut c_void
    } else {
        std::ptr::null_mut()
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pbx_exec(chan: *mut c_void, app: *mut c_void, data: *const c_char) -> c_int {
    assert_eq!(app as *const u8, &PJSIP_HANGUP as *const u8, "pbx_exec of an application pbx_findapp did not give");
    let ch = unsafe { &mut *(chan as *mut Channel) };
    assert_eq!(ch.locked, 0, "pbx_exec with the channel locked");
    ch.execs.push(format!("PJSIPHangup({})", unsafe { text(data) }));
    -1
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_func_read(chan: *mut c_void, function: *const c_char, buf: *mut c_char, len: usize) -> c_int {
    let ch = unsafe { &mut *(chan as *mut Channel) };
    assert_eq!(ch.locked, 0, "ast_func_read with the channel locked");
    let expr = unsafe { text(function) };
    match ch.funcs.get(&expr) {
        None => -1,
        Some(v) => {
            let b = v.as_bytes_with_nul();
            assert!(b.len() <= len, "ast_func_read buffer too small");
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr() as *const c_char, buf, b.len()) };
            0
        }
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pbx_builtin_getvar_helper(chan: *mut c_void, name: *const c_char) -> *const c_char {
    let ch = unsafe { &mut *(chan as *mut Channel) };
    assert!(ch.locked > 0, "the value of getvar is only safe under the channel lock");
    let name = unsafe { text(name) };
    ch.getvar = ch.vars.get(&name).map(|v| CString::new(v.as_str()).unwrap());
    ch.getvar.as_ref().map_or(std::ptr::null(), |v| v.as_ptr())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_channel_uniqueid(chan: *const c_void) -> *const c_char {
    unsafe { (*(chan as *const Channel)).uniqueid.as_ptr() }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_channel_exten(chan: *const c_void) -> *const c_char {
    let ch = unsafe { &*(chan as *const Channel) };
    assert!(ch.locked > 0, "read the extension under the channel lock");
    ch.exten.as_ptr()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_channel_tech(chan: *const c_void) -> *const TechHead {
    unsafe { (*(chan as *const Channel)).tech }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_channel_hangupcause_set(chan: *mut c_void, cause: c_int) {
    unsafe { (*(chan as *mut Channel)).hangupcause = cause };
}

/// Any thread: a live channel by uniqueid, +1 reference.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_channel_get_by_name(name: *const c_char) -> *mut c_void {
    let want = unsafe { text(name) };
    host(|h| {
        for ch in h.channels.values_mut() {
            if ch.uniqueid.to_str().unwrap() == want {
                ch.refs.fetch_add(1, Ordering::SeqCst);
                return &mut **ch as *mut Channel as *mut c_void;
            }
        }
        std::ptr::null_mut()
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ao2_ref(o: *mut c_void, delta: c_int, _t: *const c_char, _f: *const c_char, _l: c_int, _fun: *const c_char) -> c_int {
    let refs = unsafe { &(*(o as *const Channel)).refs };
    let before = refs.fetch_add(delta, Ordering::SeqCst);
    assert!(before + delta >= 0, "a channel reference released twice");
    before
}

#[repr(C)]
pub struct timeval {
    tv_sec: i64,
    tv_usec: i64,
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_channel_answertime(chan: *mut c_void) -> timeval {
    let ch = chan as *const Channel;
    assert!(unsafe { (*ch).refs.load(Ordering::SeqCst) } > 0, "answertime of a channel without a reference");
    let us = unsafe { (*ch).answered_usecs.load(Ordering::SeqCst) };
    timeval { tv_sec: us / 1_000_000, tv_usec: us % 1_000_000 }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ast_channel_softhangup_withcause_locked(chan: *mut c_void, cause: c_int) {
    let ch = chan as *const Channel;
    assert!(unsafe { (*ch).refs.load(Ordering::SeqCst) } > 0, "softhangup of a channel without a reference");
    unsafe { (*ch).softhangup_cause.store(cause, Ordering::SeqCst) };
    let uid = unsafe { (*ch).uniqueid.to_string_lossy().into_owned() };
    host(|h| h.logs.push(format!("SOFTHANGUP {uid} cause {cause}")));
}

// ---- the driver ------------------------------------------------------------------------

struct Loaded {
    handle: *mut c_void,
    info: *mut ast_module_info,
    path: String,
}

fn mapped(path: &str) -> bool {
    let real = std::fs::canonicalize(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_owned());
    std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_default()
        .contains(&real)
}

fn main() {
    let dir = CString::new(conf_dir().to_string_lossy().into_owned()).unwrap();
    unsafe { ast_config_AST_CONFIG_DIR = ConstStr(dir.into_raw()) };
    let mut loaded: Vec<Loaded> = Vec::new();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines().map_while(Result::ok) {
        let line = line.trim_end().to_owned();
        let (cmd, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let reply: String = match cmd {
            "dlopen" => {
                let before = host(|h| h.modules.len());
                let path = CString::new(rest).unwrap();
                let handle =
                    unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
                if handle.is_null() {
                    format!("dlopen failed: {}", unsafe { text(libc::dlerror()) })
                } else {
                    match host(|h| (h.modules.len() > before).then(|| *h.modules.last().unwrap())) {
                        None => "did not register itself".into(),
                        Some(info) => {
                            loaded.push(Loaded {
                                handle,
                                info,
                                path: rest.to_owned(),
                            });
                            let i = unsafe { &*info };
                            let key = unsafe { CStr::from_ptr(i.key) }.to_bytes();
                            let sum = unsafe { text(i.buildopt_sum.as_ptr()) };
                            format!(
                                "registered name={} description={:?} load={} unload={} key_hex={} buildopt_sum={sum:?}",
                                unsafe { text(i.name) },
                                unsafe { text(i.description) },
                                i.load.is_some(),
                                i.unload.is_some(),
                                key.iter().map(|b| format!("{b:02x}")).collect::<String>()
                            )
                        }
                    }
                }
            }
            "load" | "reload" => {
                let info = loaded.last().expect("dlopen first").info;
                let f = if cmd == "load" {
                    unsafe { (*info).load }
                } else {
                    unsafe { (*info).reload }
                };
                format!("rc={}", unsafe { f.expect("callback")() })
            }
            "unload" => {
                let info = loaded.last().expect("dlopen first").info;
                let uc = host(|h| h.usecount);
                if uc > 0 {
                    format!("refused usecount={uc}")
                } else {
                    format!("rc={}", unsafe {
                        (*info).unload.expect("unload is required")()
                    })
                }
            }
            "dlclose" => {
                let l = loaded.pop().expect("dlopen first");
                let rc = unsafe { libc::dlclose(l.handle) };
                let unregistered = host(|h| h.unregistered.contains(&l.info));
                format!(
                    "rc={rc} unregistered={unregistered} mapped={}",
                    mapped(&l.path)
                )
            }
            "chan" => {
                let mut words = rest.split_whitespace();
                match (words.next(), words.next()) {
                    (Some("new"), tech) => host(|h| {
                        h.next_chan += 1;
                        let id = h.next_chan;
                        let exten = words.next().unwrap_or("s");
                        let ch: &'static mut Channel = Box::leak(Box::new(Channel {
                            vars: HashMap::new(),
                            datastores: Vec::new(),
                            locked: 0,
                            autoservice: 0,
                            funcs: HashMap::new(),
                            execs: Vec::new(),
                            hangupcause: 0,
                            uniqueid: CString::new(format!("fake-{id}")).unwrap(),
                            exten: CString::new(exten).unwrap(),
                            tech: if tech == Some("PJSIP") { &TECH_PJSIP } else { &TECH_LOCAL },
                            answered_usecs: AtomicI64::new(0),
                            softhangup_cause: AtomicI32::new(-1),
                            refs: AtomicI32::new(1),
                            getvar: None,
                        }));
                        h.channels.insert(id, ch);
                        format!("chan={id}")
                    }),
                    (Some("hangup"), Some(id)) => {
                        let ch = host(|h| h.channels.remove(&id.parse::<u32>().unwrap()));
                        match ch {
                            None => "no such channel".into(),
                            Some(ch) => {
                                for ds in std::mem::take(&mut ch.datastores) {
                                    unsafe { ast_datastore_free(ds) };
                                }
                                ch.refs.fetch_sub(1, Ordering::SeqCst);
                                "hung up".into()
                            }
                        }
                    }
                    (Some("answer"), Some(id)) => host(|h| match h.channels.get(&id.parse::<u32>().unwrap()) {
                        None => "no such channel".into(),
                        Some(ch) => {
                            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
                            ch.answered_usecs.store(now, Ordering::SeqCst);
                            "answered".into()
                        }
                    }),
                    (Some("show"), Some(id)) => host(|h| match h.channels.get(&id.parse::<u32>().unwrap()) {
                        None => "no such channel".into(),
                        Some(ch) => {
                            let sh = ch.softhangup_cause.load(Ordering::SeqCst);
                            format!(
                                "uniqueid={} softhangup={} hangupcause={} refs={} execs={:?}",
                                ch.uniqueid.to_string_lossy(),
                                if sh < 0 { "none".to_owned() } else { sh.to_string() },
                                ch.hangupcause,
                                ch.refs.load(Ordering::SeqCst),
                                ch.execs
                            )
                        }
                    }),
                    _ => "usage: chan new [TECH [EXTEN]] | chan hangup|answer|show ID".into(),
                }
            }
            "read" => {
                let mut parts = rest.splitn(3, ' ');
                let (chan, func, args) = (
                    parts.next().unwrap_or("-"),
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or(""),
                );
                let acf = host(|h| h.functions.get(func).copied());
                match acf {
                    None => format!("no function {func}"),
                    Some(acf) => {
                        let chan_ptr = if chan == "-" {
                            std::ptr::null_mut()
                        } else {
                            host(|h| {
                                h.channels
                                    .get_mut(&chan.parse::<u32>().unwrap())
                                    .map(|c| &mut **c as *mut Channel as *mut c_void)
                            })
                            .expect("no such channel")
                        };
                        let max = unsafe { (*acf).read_max };
                        let len = if max == 0 { 4096 } else { max };
                        let mut buf = vec![0x55u8; len];
                        let mut data = CString::new(args).unwrap().into_bytes_with_nul();
                        let name = CString::new(func).unwrap();
                        let t0 = std::time::Instant::now();
                        let rc = unsafe {
                            (*acf).read.expect("read")(
                                chan_ptr,
                                name.as_ptr(),
                                data.as_mut_ptr() as *mut c_char,
                                buf.as_mut_ptr() as *mut c_char,
                                len,
                            )
                        };
                        let us = t0.elapsed().as_micros();
                        let end = buf
                            .iter()
                            .position(|&b| b == 0)
                            .expect("the module must NUL-terminate the buffer");
                        format!(
                            "rc={rc} us={us} value={}",
                            String::from_utf8_lossy(&buf[..end]).replace('\n', "\\n")
                        )
                    }
                }
            }
            "set" | "func" => {
                let mut w = rest.splitn(3, ' ');
                let (id, name, value) = (
                    w.next().unwrap().parse::<u32>().unwrap(),
                    w.next().unwrap_or("").to_owned(),
                    w.next().unwrap_or("").to_owned(),
                );
                host(|h| match h.channels.get_mut(&id) {
                    None => "no such channel".to_owned(),
                    Some(ch) => {
                        if cmd == "set" {
                            ch.vars.insert(name, value);
                        } else {
                            ch.funcs.insert(name, CString::new(value).unwrap());
                        }
                        "ok".to_owned()
                    }
                })
            }
            "exec" => {
                let mut parts = rest.splitn(3, ' ');
                let (id, app, args) = (
                    parts.next().unwrap().parse::<u32>().unwrap(),
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or(""),
                );
                let found = host(|h| {
                    let f = h.apps.get(app).copied();
                    let c = h.channels.get_mut(&id).map(|c| &mut **c as *mut Channel as *mut c_void);
                    (f, c)
                });
                match found {
                    (None, _) => format!("no application {app}"),
                    (_, None) => "no such channel".into(),
                    (Some(f), Some(chan)) => {
                        let data = CString::new(args).unwrap();
                        let t0 = std::time::Instant::now();
                        let rc = unsafe { f(chan, data.as_ptr()) };
                        format!("rc={rc} us={}", t0.elapsed().as_micros())
                    }
                }
            }
            "var" => {
                let mut w = rest.split_whitespace();
                let (id, name) = (
                    w.next().unwrap().parse::<u32>().unwrap(),
                    w.next().unwrap_or(""),
                );
                host(|h| {
                    h.channels
                        .get(&id)
                        .and_then(|c| c.vars.get(name).cloned())
                        .unwrap_or_else(|| "(unset)".into())
                })
            }
            "cli" | "complete" => {
                let (words, word) = match rest.split_once(" | ") {
                    Some((w, x)) if cmd == "complete" => (w.to_owned(), Some(x.to_owned())),
                    _ => (rest.to_owned(), None),
                };
                let words: Vec<String> = words.split_whitespace().map(str::to_owned).collect();
                let entry = host(|h| {
                    h.clis
                        .iter()
                        .filter(|(c, _)| {
                            let cw: Vec<&str> = c.split(' ').collect();
                            words.len() >= cw.len() && cw.iter().zip(&words).all(|(a, b)| a == b)
                        })
                        .max_by_key(|(c, _)| c.len())
                        .map(|(_, e)| *e)
                });
                match entry {
                    None => format!("No such command '{}'\n.", words.join(" ")),
                    Some(e) => {
                        let mut all = words.clone();
                        if let Some(w) = &word {
                            all.push(w.clone());
                        }
                        let cargs: Vec<CString> = all
                            .iter()
                            .map(|w| CString::new(w.as_str()).unwrap())
                            .collect();
                        let ptrs: Vec<*const c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
                        let handler = unsafe { (*e).handler.unwrap() };
                        if let Some(w) = word {
                            let cw = CString::new(w).unwrap();
                            let mut found = Vec::new();
                            for n in 0..50 {
                                let mut a = ast_cli_args {
                                    fd: 1,
                                    argc: ptrs.len() as c_int,
                                    argv: ptrs.as_ptr(),
                                    line: std::ptr::null(),
                                    word: cw.as_ptr(),
                                    pos: words.len() as c_int,
                                    n,
                                };
                                let r = unsafe { handler(e, -3, &mut a) };
                                if r.is_null() {
                                    break;
                                }
                                found.push(unsafe { text(r) });
                                unsafe { libc::free(r as *mut c_void) };
                            }
                            format!("{}\n.", found.join(" "))
                        } else {
                            host(|h| h.cli_out.clear());
                            let mut a = ast_cli_args {
                                fd: 1,
                                argc: ptrs.len() as c_int,
                                argv: ptrs.as_ptr(),
                                line: std::ptr::null(),
                                word: std::ptr::null(),
                                pos: 0,
                                n: 0,
                            };
                            let r = unsafe { handler(e, -4, &mut a) };
                            let status = match r as usize {
                                0 => "",
                                1 => "(showusage)\n",
                                _ => "(failure)\n",
                            };
                            let text = host(|h| std::mem::take(&mut h.cli_out));
                            format!("{text}{status}.")
                        }
                    }
                }
            }
            "state" => host(|h| {
                let mut f: Vec<&String> = h.functions.keys().collect();
                f.sort();
                let c: Vec<&String> = h.clis.iter().map(|(c, _)| c).collect();
                let mut a: Vec<&String> = h.apps.keys().collect();
                a.sort();
                format!(
                    "functions={:?} clis={:?} apps={:?} usecount={} datastores={} autoservice_calls={}",
                    f, c, a, h.usecount, h.datastores_alive, h.autoservice_calls
                )
            }),
            "logs" => host(|h| {
                let mut s = std::mem::take(&mut h.logs).join("\n");
                s.push_str("\n.");
                s
            }),
            "" => continue,
            other => format!("unknown command {other}"),
        };
        writeln!(out, "{reply}").unwrap();
        out.flush().unwrap();
    }
}
