//! privateness.conf: read with Asterisk's own config loader (so `#include`,
//! templates and the usual comment rules work): section `[general]`, with the
//! same keys as the Kamailio module's modparams (ness_core::settings), and the
//! optional `[randpay]` (crate::randpay::settings).

use std::ffi::{CStr, CString};

use ness_core::settings::{KEYS, ModuleSettings};

use crate::ffi::{
    self, CONFIG_FLAG_FILEUNCHANGED, CONFIG_STATUS_FILEINVALID, CONFIG_STATUS_FILEUNCHANGED,
    ast_flags,
};
use crate::log::awarn;
use crate::randpay::settings::{self as randpay_settings, RandpayConf};

pub const FILE: &CStr = c"privateness.conf";

/// What reading the file gave.
pub enum ConfigRead {
    /// Reload with an unchanged file.
    Unchanged,
    Settings(Box<Conf>),
}

/// The whole file.
pub struct Conf {
    pub general: ModuleSettings,
    pub randpay: RandpayConf,
    /// `[general] trunk_config`: the Skywire trunk file (trunk.rs).
    pub trunk_config: Option<std::path::PathBuf>,
    /// `[hooks]`: the Lua hooks script and its limits (hooks.rs).
    pub hooks: crate::hooks::HooksConf,
}

/// Why the file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "privateness.conf not found in {0}; copy dialplan/asterisk/privateness.conf there and set the node's URL and credentials"
    )]
    Missing(String),
    #[error("privateness.conf cannot be parsed (see the config loader's message above)")]
    Invalid,
    #[error("privateness.conf has no [general] section")]
    NoGeneral,
    #[error("privateness.conf line {line}: {why}")]
    Setting { line: i32, why: String },
    #[error("privateness.conf: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    Randpay(#[from] crate::randpay::settings::RandpayConfError),
}

fn config_dir() -> String {
    // SAFETY: a string the core sets at startup and never frees.
    unsafe {
        let p = std::ptr::read_volatile(&raw const ffi::ast_config_AST_CONFIG_DIR);
        if p.is_null() {
            "the Asterisk config directory".to_owned()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Read privateness.conf. With `reload`, an unchanged file is reported as such.
pub fn read(reload: bool) -> Result<ConfigRead, ConfigError> {
    let flags = ast_flags {
        flags: if reload { CONFIG_FLAG_FILEUNCHANGED } else { 0 },
    };
    // SAFETY: exported loader; returns a config or one of the status sentinels.
    let cfg = unsafe { ffi::ast_config_load2(FILE.as_ptr(), c"res_privateness".as_ptr(), flags) };
    if cfg.is_null() {
        return Err(ConfigError::Missing(config_dir()));
    }
    if cfg == CONFIG_STATUS_FILEUNCHANGED {
        return Ok(ConfigRead::Unchanged);
    }
    if cfg == CONFIG_STATUS_FILEINVALID {
        return Err(ConfigError::Invalid);
    }
    // SAFETY: `cfg` is a real config until destroyed below; the variable lists
    // belong to it, so everything is copied out first.
    let (general, randpay, hooks) = unsafe {
        let general = section(cfg, c"general");
        let randpay = section(cfg, c"randpay");
        let hooks = section(cfg, c"hooks");
        ffi::ast_config_destroy(cfg);
        (general, randpay, hooks)
    };
    let Some(mut general) = general else {
        return Err(ConfigError::NoGeneral);
    };
    // trunk_config is the module's own (the core settings do not know it).
    let trunk_config = general
        .iter()
        .rposition(|(k, _, _)| k.trim().eq_ignore_ascii_case("trunk_config"))
        .map(|i| std::path::PathBuf::from(general[i].1.trim()));
    general.retain(|(k, _, _)| !k.trim().eq_ignore_ascii_case("trunk_config"));
    let general = settings_from(&general)?;
    let (randpay, unknown) = RandpayConf::from_entries(&randpay.unwrap_or_default())?;
    for (key, line) in unknown {
        awarn!(
            "privateness.conf [randpay] line {line}: unknown setting {key:?} ignored (known: {})",
            randpay_settings::keys().join(", ")
        );
    }
    let hooks = crate::hooks::HooksConf::from_entries(&hooks.unwrap_or_default()).map_err(ConfigError::Inconsistent)?;
    Ok(ConfigRead::Settings(Box::new(Conf { general, randpay, trunk_config, hooks })))
}

/// The `(key, value, line)` entries of one section; None if it is absent.
///
/// # Safety
/// `cfg` is a loaded config.
unsafe fn section(cfg: *mut ffi::ast_config, name: &CStr) -> Option<Vec<(String, String, i32)>> {
    let mut entries = Vec::new();
    // SAFETY: per the caller; the list is walked and copied, not kept.
    unsafe {
        let mut v = ffi::ast_variable_browse(cfg, name.as_ptr());
        if v.is_null() {
            return None;
        }
        while !v.is_null() {
            let name = CStr::from_ptr((*v).name).to_string_lossy().into_owned();
            let value = CStr::from_ptr((*v).value).to_string_lossy().into_owned();
            entries.push((name, value, (*v).lineno));
            v = (*v).next;
        }
    }
    Some(entries)
}

/// Apply `(key, value, line)` entries to the defaults. Unknown keys are warned
/// about and skipped; a bad value stops with its line number.
pub fn settings_from(entries: &[(String, String, i32)]) -> Result<ModuleSettings, ConfigError> {
    let mut s = ModuleSettings::default();
    for (key, value, line) in entries {
        let key = key.trim().to_ascii_lowercase();
        if !KEYS.contains(&key.as_str()) {
            awarn!(
                "privateness.conf line {line}: unknown setting {key:?} ignored (known: {})",
                KEYS.join(", ")
            );
            continue;
        }
        s.set(&key, value).map_err(|e| ConfigError::Setting {
            line: *line,
            why: e.to_string(),
        })?;
    }
    s.node_config()
        .map_err(|e| ConfigError::Inconsistent(e.to_string()))?;
    s.resolver_config()
        .map_err(|e| ConfigError::Inconsistent(e.to_string()))?;
    Ok(s)
}

/// A C string for a value that came from Rust (NULs replaced).
pub fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}
