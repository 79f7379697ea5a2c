//! Asterisk's C interface as the module uses it: the structs it shares with the
//! core, written by hand with their x86_64 layouts checked at compile time, and
//! the exported functions it calls. Layouts and prototypes are identical in
//! Asterisk 18 to 23, except `ast_custom_function`, which grew two trailing
//! fields (see below). Facts: shared/docs/asterisk-abi.md §1–§3.
#![allow(non_camel_case_types, dead_code)]

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void};
use std::mem::{offset_of, size_of};

/// A static the core writes into (registration tables): interior mutability
/// without `static mut`.
#[repr(transparent)]
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: the core serialises its writes (registration happens in load/unload),
// and the module only reads fields the core does not change.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new(v: T) -> Self {
        Global(UnsafeCell::new(v))
    }
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// Opaque core objects.
pub type ast_module = c_void;
pub type ast_channel = c_void;
pub type ast_config = c_void;

// ---- modules (module.h) ------------------------------------------------------

#[repr(C)]
pub struct ast_module_info {
    /// Written by `ast_module_register`.
    pub self_: *mut ast_module,
    pub load: Option<unsafe extern "C" fn() -> c_int>,
    pub reload: Option<unsafe extern "C" fn() -> c_int>,
    /// Called without a NULL check: must be set.
    pub unload: Option<unsafe extern "C" fn() -> c_int>,
    pub name: *const c_char,
    pub description: *const c_char,
    pub key: *const c_char,
    pub flags: c_uint,
    /// All zero: skip the build-option check (an external module).
    pub buildopt_sum: [c_char; 33],
    pub load_pri: c_uchar,
    pub requires: *const c_char,
    pub optional_modules: *const c_char,
    pub enhances: *const c_char,
    pub reserved1: *mut c_void,
    pub reserved2: *mut c_void,
    pub reserved3: *mut c_void,
    pub reserved4: *mut c_void,
    pub support_level: c_int,
}

pub const AST_MODFLAG_LOAD_ORDER: c_uint = 2;
pub const AST_MODPRI_DEFAULT: c_uchar = 128;
pub const AST_MODULE_SUPPORT_EXTENDED: c_int = 2;
pub const AST_MODULE_LOAD_SUCCESS: c_int = 0;
/// Not running; never abort startup (FAILURE = -1 would).
pub const AST_MODULE_LOAD_DECLINE: c_int = 1;

/// The license key every module must carry (include/asterisk/module.h,
/// ASTERISK_GPL_KEY); the loader checks its MD5. It says that code including it
/// is GPL-2.0-or-later, which this workspace is.
pub const ASTERISK_GPL_KEY: &std::ffi::CStr = c"This paragraph is copyright (c) 2006 by Digium, Inc. In order for your module to load, it must return this key via a function called \"key\".  Any code which includes this paragraph must be licensed under the GNU General Public License version 2 or later (at your option).  In addition to Digium's general reservations of rights, Digium expressly reserves the right to allow other parties to license this paragraph under different terms. Any use of Digium, Inc. trademarks or logos (including \"Asterisk\" or \"Digium\") without express written permission of Digium, Inc. is prohibited.\n";

// ---- dialplan functions (pbx.h) ------------------------------------------------

pub type acf_read_fn =
    unsafe extern "C" fn(*mut ast_channel, *const c_char, *mut c_char, *mut c_char, usize) -> c_int;

#[repr(C)]
pub struct ast_vector_ptr {
    pub elems: *mut c_void,
    pub max: usize,
    pub current: usize,
}

#[repr(C)]
pub struct ast_string_field_mgr {
    pub last_alloc: *const c_char,
    pub embedded_pool: *mut c_void,
    pub string_fields: ast_vector_ptr,
}

/// The newest (176-byte) layout. Older servers read a prefix of it; `synopsis`
/// and `desc` are always set, so no server writes the string-field tail.
#[repr(C)]
pub struct ast_custom_function {
    pub name: *const c_char,
    pub field_mgr_pool: *mut c_void,
    pub synopsis: *const c_char,
    pub desc: *const c_char,
    pub syntax: *const c_char,
    pub arguments: *const c_char,
    pub seealso: *const c_char,
    pub field_mgr: ast_string_field_mgr,
    pub docsrc: c_int,
    pub read: Option<acf_read_fn>,
    pub read2: Option<
        unsafe extern "C" fn(
            *mut ast_channel,
            *const c_char,
            *mut c_char,
            *mut *mut c_void,
            isize,
        ) -> c_int,
    >,
    pub read_max: usize,
    pub write: Option<
        unsafe extern "C" fn(*mut ast_channel, *const c_char, *mut c_char, *const c_char) -> c_int,
    >,
    pub mod_: *mut ast_module,
    /// Bit 0 read escalates, bit 1 write escalates.
    pub escalates: c_uint,
    pub acflist_next: *mut ast_custom_function,
    pub since: *const c_char,
    pub provided_by: *const c_char,
}

pub const AST_STATIC_DOC: c_int = 1;

// ---- CLI (cli.h) -----------------------------------------------------------------

#[repr(C)]
pub struct ast_cli_args {
    pub fd: c_int,
    pub argc: c_int,
    pub argv: *const *const c_char,
    pub line: *const c_char,
    pub word: *const c_char,
    pub pos: c_int,
    pub n: c_int,
}

pub type cli_handler =
    unsafe extern "C" fn(*mut ast_cli_entry, c_int, *mut ast_cli_args) -> *mut c_char;

#[repr(C)]
pub struct ast_cli_entry {
    pub cmda: [*const c_char; 16],
    pub summary: *const c_char,
    pub usage: *const c_char,
    pub inuse: c_int,
    pub module: *mut ast_module,
    pub full_cmd: *mut c_char,
    pub cmdlen: c_int,
    pub args: c_int,
    pub command: *const c_char,
    pub handler: Option<cli_handler>,
    pub list_next: *mut ast_cli_entry,
}

pub const CLI_INIT: c_int = -2;
pub const CLI_GENERATE: c_int = -3;
pub const CLI_HANDLER: c_int = -4;
pub const CLI_SUCCESS: *mut c_char = std::ptr::null_mut();
// cli.h defines these as the integers 1 and 2 cast to pointers.
#[allow(clippy::manual_dangling_ptr)]
pub const CLI_SHOWUSAGE: *mut c_char = 1 as *mut c_char;
pub const CLI_FAILURE: *mut c_char = 2 as *mut c_char;

// ---- channels and datastores (datastore.h, channel.h) ----------------------------

#[repr(C)]
pub struct ast_datastore_info {
    pub type_: *const c_char,
    pub duplicate: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    pub destroy: Option<unsafe extern "C" fn(*mut c_void)>,
    pub chan_fixup: Option<unsafe extern "C" fn(*mut c_void, *mut ast_channel, *mut ast_channel)>,
    pub chan_breakdown:
        Option<unsafe extern "C" fn(*mut c_void, *mut ast_channel, *mut ast_channel)>,
}

// SAFETY: read-only after construction; holds pointers to static strings and code.
unsafe impl Sync for ast_datastore_info {}

#[repr(C)]
pub struct ast_datastore {
    pub uid: *const c_char,
    pub data: *mut c_void,
    pub info: *const ast_datastore_info,
    pub mod_: *mut ast_module,
    pub inheritance: c_uint,
    pub entry_next: *mut ast_datastore,
}

// ---- configuration (config.h) ------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ast_flags {
    pub flags: c_uint,
}

pub const CONFIG_FLAG_FILEUNCHANGED: c_uint = 2;
/// `ast_config_load2` results that are not configs.
pub const CONFIG_STATUS_FILEMISSING: *mut ast_config = std::ptr::null_mut();
pub const CONFIG_STATUS_FILEUNCHANGED: *mut ast_config = usize::MAX as *mut ast_config;
pub const CONFIG_STATUS_FILEINVALID: *mut ast_config = (usize::MAX - 1) as *mut ast_config;

/// Only the leading fields are read; the core owns the rest.
#[repr(C)]
pub struct ast_variable {
    pub name: *const c_char,
    pub value: *const c_char,
    pub next: *mut ast_variable,
    pub file: *const c_char,
    pub lineno: c_int,
}

// ---- logging (logger.h) ---------------------------------------------------------------

pub const LOG_DEBUG: c_int = 0;
pub const LOG_NOTICE: c_int = 2;
pub const LOG_WARNING: c_int = 3;
pub const LOG_ERROR: c_int = 4;
pub const LOG_VERBOSE: c_int = 5;

pub const AO2_LOCK_REQ_MUTEX: c_int = 0;

unsafe extern "C" {
    pub fn ast_module_register(info: *const ast_module_info);
    pub fn ast_module_unregister(info: *const ast_module_info);

    pub fn __ast_custom_function_register(
        acf: *mut ast_custom_function,
        module: *mut ast_module,
    ) -> c_int;
    pub fn ast_custom_function_unregister(acf: *mut ast_custom_function) -> c_int;

    pub fn __ast_cli_register(e: *mut ast_cli_entry, module: *mut ast_module) -> c_int;
    pub fn ast_cli_unregister(e: *mut ast_cli_entry) -> c_int;
    /// Variadic in C; always called with "%s" and one string.
    pub fn ast_cli(fd: c_int, fmt: *const c_char, ...);

    /// Variadic in C; always called with "%s" and one string.
    pub fn ast_log(
        level: c_int,
        file: *const c_char,
        line: c_int,
        function: *const c_char,
        fmt: *const c_char,
        ...
    );
    pub static option_debug: c_int;
    pub static ast_config_AST_CONFIG_DIR: *const c_char;

    pub fn ast_config_load2(
        filename: *const c_char,
        who_asked: *const c_char,
        flags: ast_flags,
    ) -> *mut ast_config;
    pub fn ast_variable_browse(
        config: *const ast_config,
        category: *const c_char,
    ) -> *mut ast_variable;
    pub fn ast_config_destroy(config: *mut ast_config);

    pub fn pbx_builtin_setvar_helper(
        chan: *mut ast_channel,
        name: *const c_char,
        value: *const c_char,
    ) -> c_int;

    pub fn __ast_datastore_alloc(
        info: *const ast_datastore_info,
        uid: *const c_char,
        module: *mut ast_module,
        file: *const c_char,
        line: c_int,
        function: *const c_char,
    ) -> *mut ast_datastore;
    pub fn ast_datastore_free(datastore: *mut ast_datastore) -> c_int;
    pub fn ast_channel_datastore_add(
        chan: *mut ast_channel,
        datastore: *mut ast_datastore,
    ) -> c_int;
    pub fn ast_channel_datastore_find(
        chan: *mut ast_channel,
        info: *const ast_datastore_info,
        uid: *const c_char,
    ) -> *mut ast_datastore;

    pub fn __ao2_lock(
        obj: *mut c_void,
        how: c_int,
        file: *const c_char,
        func: *const c_char,
        line: c_int,
        var: *const c_char,
    ) -> c_int;
    pub fn __ao2_unlock(
        obj: *mut c_void,
        file: *const c_char,
        func: *const c_char,
        line: c_int,
        var: *const c_char,
    ) -> c_int;

    pub fn ast_autoservice_start(chan: *mut ast_channel) -> c_int;
    pub fn ast_autoservice_stop(chan: *mut ast_channel) -> c_int;

    pub fn __ast_malloc(
        size: usize,
        file: *const c_char,
        line: c_int,
        func: *const c_char,
    ) -> *mut c_void;
}

// ---- RANDPAY: applications, channels from other threads (docs/asterisk-randpay-notes.md §5) ----

pub type ast_app = c_void;
pub type app_exec_fn = unsafe extern "C" fn(chan: *mut ast_channel, data: *const c_char) -> c_int;

/// `struct timeval` on x86_64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}

/// The first fields of `struct ast_channel_tech` (only `type` is read).
#[repr(C)]
pub struct ast_channel_tech_head {
    pub type_: *const c_char,
    pub description: *const c_char,
}

pub const AST_SOFTHANGUP_EXPLICIT: c_int = 32;
pub const AST_STATE_UP: c_int = 6;
pub const AST_CAUSE_CALL_REJECTED: c_int = 21;
pub const AST_CAUSE_FACILITY_REJECTED: c_int = 29;
pub const AST_CAUSE_CONGESTION: c_int = 34;
/// Application return values.
pub const AST_PBX_OK: c_int = 0;
pub const AST_PBX_HANGUP: c_int = -1;

unsafe extern "C" {
    pub fn ast_register_application2(
        app: *const c_char,
        execute: Option<app_exec_fn>,
        synopsis: *const c_char,
        description: *const c_char,
        module: *mut ast_module,
    ) -> c_int;
    pub fn ast_unregister_application(app: *const c_char) -> c_int;
    pub fn pbx_findapp(app: *const c_char) -> *mut ast_app;
    pub fn pbx_exec(chan: *mut ast_channel, app: *mut ast_app, data: *const c_char) -> c_int;
    pub fn ast_func_read(
        chan: *mut ast_channel,
        function: *const c_char,
        workspace: *mut c_char,
        len: usize,
    ) -> c_int;
    /// The value stays valid while the caller holds the channel lock.
    pub fn pbx_builtin_getvar_helper(chan: *mut ast_channel, name: *const c_char) -> *const c_char;

    /// A name or a uniqueid; +1 reference (drop it with `__ao2_ref(chan, -1, …)`) or NULL.
    pub fn ast_channel_get_by_name(name_or_uniqueid: *const c_char) -> *mut ast_channel;
    pub fn ast_channel_softhangup_withcause_locked(chan: *mut ast_channel, causecode: c_int);
    pub fn ast_channel_hangupcause_set(chan: *mut ast_channel, cause: c_int);
    pub fn ast_channel_state(chan: *const ast_channel) -> c_int;
    pub fn ast_channel_answertime(chan: *mut ast_channel) -> timeval;
    pub fn ast_channel_uniqueid(chan: *const ast_channel) -> *const c_char;
    pub fn ast_channel_name(chan: *const ast_channel) -> *const c_char;
    pub fn ast_channel_exten(chan: *const ast_channel) -> *const c_char;
    pub fn ast_channel_tech(chan: *const ast_channel) -> *const ast_channel_tech_head;
    pub fn __ao2_ref(
        o: *mut c_void,
        delta: c_int,
        tag: *const c_char,
        file: *const c_char,
        line: c_int,
        func: *const c_char,
    ) -> c_int;
}

// ---- layouts, checked against the offsets measured with offsetof() ------------------

const _: () = {
    assert!(size_of::<ast_module_info>() == 160);
    assert!(offset_of!(ast_module_info, name) == 32);
    assert!(offset_of!(ast_module_info, flags) == 56);
    assert!(offset_of!(ast_module_info, buildopt_sum) == 60);
    assert!(offset_of!(ast_module_info, load_pri) == 93);
    assert!(offset_of!(ast_module_info, requires) == 96);
    assert!(offset_of!(ast_module_info, reserved1) == 120);
    assert!(offset_of!(ast_module_info, support_level) == 152);

    assert!(size_of::<ast_custom_function>() == 176);
    assert!(offset_of!(ast_custom_function, synopsis) == 16);
    assert!(offset_of!(ast_custom_function, field_mgr) == 56);
    assert!(offset_of!(ast_custom_function, docsrc) == 96);
    assert!(offset_of!(ast_custom_function, read) == 104);
    assert!(offset_of!(ast_custom_function, read_max) == 120);
    assert!(offset_of!(ast_custom_function, mod_) == 136);
    assert!(offset_of!(ast_custom_function, escalates) == 144);
    assert!(offset_of!(ast_custom_function, acflist_next) == 152);
    assert!(offset_of!(ast_custom_function, since) == 160);
    assert!(offset_of!(ast_custom_function, provided_by) == 168);

    assert!(size_of::<ast_cli_args>() == 40);
    assert!(offset_of!(ast_cli_args, word) == 24);
    assert!(offset_of!(ast_cli_args, pos) == 32);
    assert!(offset_of!(ast_cli_args, n) == 36);

    assert!(size_of::<ast_cli_entry>() == 200);
    assert!(offset_of!(ast_cli_entry, summary) == 128);
    assert!(offset_of!(ast_cli_entry, inuse) == 144);
    assert!(offset_of!(ast_cli_entry, module) == 152);
    assert!(offset_of!(ast_cli_entry, cmdlen) == 168);
    assert!(offset_of!(ast_cli_entry, command) == 176);
    assert!(offset_of!(ast_cli_entry, handler) == 184);
    assert!(offset_of!(ast_cli_entry, list_next) == 192);

    assert!(size_of::<ast_datastore_info>() == 40);
    assert!(size_of::<ast_datastore>() == 48);
    assert!(offset_of!(ast_datastore, inheritance) == 32);
    assert!(offset_of!(ast_datastore, entry_next) == 40);

    assert!(size_of::<ast_flags>() == 4);
    assert!(offset_of!(ast_variable, next) == 16);
    assert!(offset_of!(ast_variable, lineno) == 32);

    assert!(size_of::<timeval>() == 16);
};
