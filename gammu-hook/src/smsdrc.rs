//! Reading gammu-smsd's own config (`/etc/gammu-smsdrc`), so the operator says the
//! backend, the inbox path and format, and the database once. INI as gammu reads
//! it: `[section]`, `key = value`, keys case-insensitive, whole-line comments with
//! `;` or `#` (a `#` inside a value is part of it — RunOnReceive's ` #` depends on
//! that).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Files,
    Sql,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxFormat {
    /// BOM + UTF-16BE (cut at the first U+0000: the 1.42 length bug).
    Unicode,
    /// The locale's encoding (UTF-8 under `LANG=C.UTF-8`).
    Standard,
    /// A Gammu SMS backup file holding every part.
    Detail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smsdrc {
    pub service: Service,
    pub inbox_path: PathBuf,
    pub inbox_format: InboxFormat,
    /// The SQLite database (`dbdir` + `database`) for `service = sql`, `driver = sqlite3`.
    pub database: Option<PathBuf>,
    pub sql_driver: Option<String>,
    pub phone_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SmsdrcError {
    #[error("cannot read gammu-smsd's config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("gammu-smsd's config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// `section.key` (lower case) → value.
fn parse_ini(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.insert(format!("{section}.{}", k.trim().to_ascii_lowercase()), v.trim().to_owned());
        }
    }
    out
}

impl Smsdrc {
    /// What the hook assumes when gammu-smsd's config cannot be read: the message
    /// is taken from the environment alone.
    pub fn environment_only() -> Smsdrc {
        Smsdrc {
            service: Service::Null,
            inbox_path: PathBuf::new(),
            inbox_format: InboxFormat::Standard,
            database: None,
            sql_driver: None,
            phone_id: String::new(),
        }
    }

    pub fn load(path: &Path) -> Result<Smsdrc, SmsdrcError> {
        let text = std::fs::read_to_string(path).map_err(|source| SmsdrcError::Read { path: path.into(), source })?;
        Smsdrc::parse(&text).map_err(|message| SmsdrcError::Invalid { path: path.into(), message })
    }

    pub fn parse(text: &str) -> Result<Smsdrc, String> {
        let ini = parse_ini(text);
        let get = |k: &str| ini.get(&format!("smsd.{k}")).map(String::as_str);
        let service = match get("service").map(str::to_ascii_lowercase).as_deref() {
            Some("files") => Service::Files,
            // The deprecated aliases are all SQL backends.
            Some("sql" | "mysql" | "pgsql" | "dbi") => Service::Sql,
            Some("null") => Service::Null,
            Some(other) => return Err(format!("service = {other} is not one the hook reads (files, sql, null)")),
            None => return Err("no `service` in [smsd]".into()),
        };
        let inbox_format = match get("inboxformat").map(str::to_ascii_lowercase).as_deref() {
            // gammu 1.42's code default, whatever its manual says.
            None | Some("standard") => InboxFormat::Standard,
            Some("unicode") => InboxFormat::Unicode,
            Some("detail") => InboxFormat::Detail,
            Some(other) => return Err(format!("inboxformat = {other} is not unicode, standard or detail")),
        };
        let sql_driver = get("driver").map(str::to_owned);
        let database = match (get("dbdir"), get("database")) {
            (_, None) => None,
            (Some(dir), Some(db)) => Some(Path::new(dir).join(db)),
            (None, Some(db)) => Some(PathBuf::from(db)),
        };
        if service == Service::Sql {
            match sql_driver.as_deref() {
                Some("sqlite3") => {}
                other => {
                    return Err(format!(
                        "service = sql with driver {other:?}: the hook reads SQLite databases (driver = sqlite3); \
                         with another database use the ` #` RunOnReceive and the environment"
                    ));
                }
            }
            if database.is_none() {
                return Err("service = sql needs `database` (and `dbdir`)".into());
            }
        }
        Ok(Smsdrc {
            service,
            inbox_path: PathBuf::from(get("inboxpath").unwrap_or("")),
            inbox_format,
            database,
            sql_driver,
            phone_id: get("phoneid").unwrap_or("").to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_hook_needs() {
        let rc = Smsdrc::parse(
            "[gammu]\nconnection = none\n; comment\n[smsd]\nService = files\nInboxPath = /var/spool/gammu/inbox/\n\
             inboxformat = unicode\nPhoneID = sim1\nRunOnReceive = /usr/bin/ness-gammu-hook receive #\n",
        )
        .unwrap();
        assert_eq!(rc.service, Service::Files);
        assert_eq!(rc.inbox_path, Path::new("/var/spool/gammu/inbox/"));
        assert_eq!(rc.inbox_format, InboxFormat::Unicode);
        assert_eq!(rc.phone_id, "sim1");
    }

    #[test]
    fn sql_needs_sqlite_and_a_database() {
        let rc = Smsdrc::parse("[smsd]\nservice = sql\ndriver = sqlite3\ndbdir = /var/lib/gammu/\ndatabase = smsd.db\n").unwrap();
        assert_eq!(rc.database.unwrap(), Path::new("/var/lib/gammu/smsd.db"));
        assert!(Smsdrc::parse("[smsd]\nservice = sql\ndriver = native_mysql\n").unwrap_err().contains("sqlite3"));
        assert!(Smsdrc::parse("[smsd]\nservice = mongo\n").unwrap_err().contains("mongo"));
        assert_eq!(Smsdrc::parse("[smsd]\nservice = null\n").unwrap().inbox_format, InboxFormat::Standard);
    }

    #[test]
    fn the_shipped_configs_parse_and_the_files_one_has_the_workaround() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dialplan/gammu");
        for (name, service) in [("gammu-smsdrc.files", Service::Files), ("gammu-smsdrc.sql", Service::Sql), ("gammu-smsdrc.null", Service::Null)] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            assert_eq!(Smsdrc::parse(&text).unwrap().service, service, "{name}");
            let hook = parse_ini(&text).get("smsd.runonreceive").cloned().unwrap();
            assert_eq!(hook.ends_with(" #"), service == Service::Files, "{name}: {hook}");
        }
    }
}
