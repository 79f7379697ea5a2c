//! What `ness-gammu-hook receive` (gammu-smsd's RunOnReceive) makes of one call:
//! the [`Sms`] it must spool, read from wherever this backend put it.
//!
//! - `files`: the arguments are inbox file names (one per part). Read each file in
//!   the configured `inboxformat`. A sender with spaces arrives split over several
//!   arguments; they are joined back. Names with `/` or `..` are refused.
//! - `sql`: the arguments are `inbox.ID`s. The first row's `TextDecoded` holds the
//!   whole text; the UDH tells how many parts were announced.
//! - no arguments (`service = null`, or the ` #` workaround for gammu 1.42's
//!   injection bug): the environment, `DECODED_1_TEXT` when `DECODED_PARTS` ≥ 1,
//!   else `SMS_1_TEXT` … `SMS_n_TEXT` joined.
//!
//! When the file or row cannot be read, the environment is used instead, and what
//! went wrong is reported: a message is never dropped because its copy was odd.
//! The sender is always data, never a path or a command.

use std::collections::HashMap;
use std::time::Duration;

use ness_core::sms::{Sms, Source};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::backup;
use crate::smsdrc::{InboxFormat, Service, Smsdrc};

pub type Env = HashMap<String, String>;

/// The process environment, with non-UTF-8 values decoded lossily.
pub fn process_env() -> Env {
    std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect()
}

/// The message of one hook call, and anything worth a log line.
pub struct Received {
    pub sms: Sms,
    pub warnings: Vec<String>,
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

fn phone_id(env: &Env, rc: &Smsdrc) -> String {
    match env.get("PHONE_ID") {
        Some(p) if !p.is_empty() => p.clone(),
        _ => rc.phone_id.clone(),
    }
}

/// Read the message of one RunOnReceive call.
pub fn receive(env: &Env, args: &[String], rc: &Smsdrc) -> Received {
    let mut warnings = Vec::new();
    if !args.is_empty() {
        let read = match rc.service {
            Service::Files => from_files(env, args, rc),
            Service::Sql => from_sql(env, args, rc),
            Service::Null => Err(format!("service = null passes no arguments, but got {args:?}")),
        };
        match read {
            Ok(sms) => return Received { sms, warnings },
            Err(e) => warnings.push(format!("{e}; using the environment instead")),
        }
    }
    Received { sms: from_env(env, rc), warnings }
}

/// The message from `SMS_n_*` / `DECODED_*` alone.
pub fn from_env(env: &Env, rc: &Smsdrc) -> Sms {
    let parts: u8 = env.get("SMS_MESSAGES").and_then(|n| n.parse().ok()).unwrap_or(1).max(1);
    let decoded: u32 = env.get("DECODED_PARTS").and_then(|n| n.parse().ok()).unwrap_or(0);
    let text = match env.get("DECODED_1_TEXT") {
        Some(t) if decoded >= 1 => t.clone(),
        _ => (1..=parts).filter_map(|n| env.get(&format!("SMS_{n}_TEXT"))).map(String::as_str).collect(),
    };
    let sender = env.get("SMS_1_NUMBER").cloned().unwrap_or_default();
    let phone_id = phone_id(env, rc);
    let received_at = now_rfc3339();
    // Nothing in the environment identifies a message uniquely (two "OK"s from the
    // same sender look alike, and 1.42 passes no time stamp), so the id is unique
    // per call; gammu runs the hook once per message.
    let nonce: [u8; 16] = rand::random();
    let id = Sms::derive_id(&[&phone_id, "env", &sender, &received_at, &hex::encode(nonce)]);
    Sms {
        id,
        phone_id,
        sender,
        text,
        binary: None,
        smsc_time: None,
        received_at,
        parts_expected: parts,
        parts_received: parts,
        source: Source::GammuEnv,
        tags: Vec::new(),
    }
}

/// Inbox file names from the arguments, joining a name the shell split at spaces.
pub fn file_names(args: &[String]) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut current = String::new();
    for a in args {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(a);
        if current.ends_with(".txt") || current.ends_with(".bin") {
            names.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        return Err(format!("{current:?} is not an inbox file name"));
    }
    for n in &names {
        if n.contains('/') || n.contains("..") || n.contains('\0') {
            return Err(format!("refusing the inbox file name {n:?}"));
        }
    }
    Ok(names)
}

/// `IN20240102_030405_00_+4915112345678_00.txt` → ("2024-01-02T03:04:05", sender).
fn parse_file_name(name: &str) -> Option<(String, String)> {
    let stem = name.strip_prefix("IN")?;
    let (d, rest) = stem.split_at_checked(8)?;
    let rest = rest.strip_prefix('_')?;
    let (t, rest) = rest.split_at_checked(6)?;
    let rest = rest.strip_prefix('_')?.get(3..)?; // the collision counter "NN_"
    let sender = &rest[..rest.rfind('_')?];
    if !(d.bytes().all(|b| b.is_ascii_digit()) && t.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let time = format!("{}-{}-{}T{}:{}:{}", &d[..4], &d[4..6], &d[6..8], &t[..2], &t[2..4], &t[4..6]);
    Some((time, sender.to_owned()))
}

fn utf16_units(bytes: &[u8]) -> Vec<u16> {
    let units = bytes.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
    // gammu 1.42 writes garbage after the text: cut at the first U+0000.
    units.take_while(|&u| u != 0).collect()
}

fn from_files(env: &Env, args: &[String], rc: &Smsdrc) -> Result<Sms, String> {
    let names = file_names(args)?;
    let mut units: Vec<u16> = Vec::new();
    let mut text = String::new();
    let mut binary: Vec<u8> = Vec::new();
    let mut parts = 0u8;
    let mut expected = None;
    for name in &names {
        let path = rc.inbox_path.join(name);
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if name.ends_with(".bin") {
            binary.extend_from_slice(&bytes);
            parts = parts.saturating_add(1);
            continue;
        }
        match rc.inbox_format {
            InboxFormat::Unicode if bytes.starts_with(&[0xFE, 0xFF]) => units.extend(utf16_units(&bytes[2..])),
            InboxFormat::Unicode | InboxFormat::Standard => {
                text.push_str(&String::from_utf16_lossy(&units));
                units.clear();
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
            InboxFormat::Detail => {
                let file = String::from_utf8_lossy(&bytes);
                let backup = backup::parse(&file).map_err(|e| format!("{}: {e}", path.display()))?;
                for p in &backup {
                    if expected.is_none() {
                        expected = backup::concat_of(&p.udh).map(|(_, total, _)| total);
                    }
                    if p.coding.eq_ignore_ascii_case("8bit") {
                        binary.extend(p.units.iter().map(|&u| u as u8));
                    } else {
                        units.extend_from_slice(&p.units);
                    }
                }
                parts = parts.saturating_add(u8::try_from(backup.len().max(1) - 1).unwrap_or(u8::MAX));
            }
        }
        parts = parts.saturating_add(1);
    }
    text.push_str(&String::from_utf16_lossy(&units));
    let first = names.first().ok_or("no inbox file names")?;
    let (smsc_time, file_sender) = parse_file_name(first).unzip();
    // The environment has the sender exactly (the file name turns `*` into `X`).
    let sender = env.get("SMS_1_NUMBER").cloned().or(file_sender).unwrap_or_default();
    let phone_id = phone_id(env, rc);
    let id = Sms::derive_id(&[&phone_id, "files", first]);
    let binary_only = text.is_empty() && !binary.is_empty();
    Ok(Sms {
        id,
        phone_id,
        sender,
        text,
        binary: binary_only.then(|| base64_encode(&binary)),
        smsc_time,
        received_at: now_rfc3339(),
        parts_expected: expected.unwrap_or(parts).max(parts),
        parts_received: parts,
        source: Source::GammuFiles,
        tags: Vec::new(),
    })
}

/// 8-bit user data as the `binary` field carries it (standard base64).
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn from_sql(env: &Env, args: &[String], rc: &Smsdrc) -> Result<Sms, String> {
    let db = rc.database.as_ref().ok_or("service = sql without a database")?;
    let ids: Vec<i64> = args
        .iter()
        .map(|a| a.trim().parse().map_err(|_| format!("{a:?} is not an inbox row id")))
        .collect::<Result<_, _>>()?;
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(2)).map_err(|e| e.to_string())?;
    struct Row {
        time: String,
        sender: String,
        decoded: String,
        text_hex: String,
        coding: String,
        udh: String,
    }
    let mut rows = Vec::new();
    for id in &ids {
        let row = conn
            .query_row(
                "SELECT ReceivingDateTime, SenderNumber, TextDecoded, Text, Coding, UDH FROM inbox WHERE ID = ?1",
                [id],
                |r| {
                    Ok(Row {
                        time: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        sender: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        decoded: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        text_hex: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        coding: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                        udh: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                    })
                },
            )
            .optional()
            .map_err(|e| format!("{}: reading inbox row {id}: {e}", db.display()))?
            .ok_or_else(|| format!("{}: no inbox row {id}", db.display()))?;
        rows.push(row);
    }
    let first = rows.first().ok_or("no inbox row ids")?;
    // The first part's row holds the whole joined text; later rows are empty.
    let text: String = rows.iter().map(|r| r.decoded.as_str()).collect();
    let binary = if text.is_empty() && rows.iter().all(|r| r.coding.eq_ignore_ascii_case("8bit")) {
        let data: Vec<u8> = rows.iter().filter_map(|r| hex::decode(&r.text_hex).ok()).flatten().collect();
        (!data.is_empty()).then(|| base64_encode(&data))
    } else {
        None
    };
    let expected = hex::decode(&first.udh).ok().and_then(|u| backup::concat_of(&u)).map(|(_, total, _)| total);
    let parts = u8::try_from(rows.len()).unwrap_or(u8::MAX);
    let sender = if first.sender.is_empty() { env.get("SMS_1_NUMBER").cloned().unwrap_or_default() } else { first.sender.clone() };
    let phone_id = phone_id(env, rc);
    let id = Sms::derive_id(&[&phone_id, "sql", &db.to_string_lossy(), &ids[0].to_string(), &sender, &first.time]);
    Ok(Sms {
        id,
        phone_id,
        sender,
        text,
        binary,
        smsc_time: (!first.time.is_empty()).then(|| first.time.replacen(' ', "T", 1)),
        received_at: now_rfc3339(),
        parts_expected: expected.unwrap_or(parts).max(parts),
        parts_received: parts,
        source: Source::GammuSql,
        tags: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn rc(service: Service, format: InboxFormat, inbox: &Path) -> Smsdrc {
        Smsdrc {
            service,
            inbox_path: inbox.into(),
            inbox_format: format,
            database: None,
            sql_driver: None,
            phone_id: "rc-phone".into(),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn environment_rule_decoded_first_then_parts() {
        let r = rc(Service::Null, InboxFormat::Standard, Path::new("/"));
        let single = from_env(&env(&[("SMS_MESSAGES", "1"), ("SMS_1_NUMBER", "x;id>inj"), ("SMS_1_TEXT", "hi"), ("DECODED_PARTS", "0"), ("PHONE_ID", "")]), &r);
        assert_eq!((single.text.as_str(), single.sender.as_str(), single.phone_id.as_str()), ("hi", "x;id>inj", "rc-phone"));
        let multi = from_env(
            &env(&[("SMS_MESSAGES", "2"), ("SMS_1_TEXT", "ab"), ("SMS_2_TEXT", "cd"), ("DECODED_PARTS", "1"), ("DECODED_1_TEXT", "abcd!"), ("PHONE_ID", "sim2")]),
            &r,
        );
        assert_eq!((multi.text.as_str(), multi.parts_received, multi.phone_id.as_str()), ("abcd!", 2, "sim2"));
        let joined = from_env(&env(&[("SMS_MESSAGES", "2"), ("SMS_1_TEXT", "ab"), ("SMS_2_TEXT", "cd")]), &r);
        assert_eq!(joined.text, "abcd");
        assert_ne!(single.id, from_env(&env(&[("SMS_1_NUMBER", "x;id>inj"), ("SMS_1_TEXT", "hi")]), &r).id);
    }

    #[test]
    fn split_file_names_are_joined_and_paths_refused() {
        let args: Vec<String> = ["IN20240102_030405_00_My", "Bank_00.txt", "IN20240102_030405_00_My", "Bank_01.txt"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(file_names(&args).unwrap(), ["IN20240102_030405_00_My Bank_00.txt", "IN20240102_030405_00_My Bank_01.txt"]);
        assert!(file_names(&["../etc/passwd.txt".into()]).is_err());
        assert!(file_names(&["IN_a/b_00.txt".into()]).is_err());
        assert!(file_names(&["notafile".into()]).is_err());
        assert_eq!(
            parse_file_name("IN20240102_030405_00_My Bank_00.txt").unwrap(),
            ("2024-01-02T03:04:05".to_string(), "My Bank".to_string())
        );
    }

    #[test]
    fn unicode_files_are_cut_at_the_first_nul_and_parts_joined() {
        let dir = tempfile::tempdir().unwrap();
        let text = "Привет 👋 äöü € 漢字";
        let units: Vec<u16> = text.encode_utf16().collect();
        // Split inside the surrogate pair of 👋, and add 1.42's trailing garbage.
        let (a, b) = units.split_at(8);
        for (i, part) in [a, b].iter().enumerate() {
            let mut bytes = vec![0xFE, 0xFF];
            bytes.extend(part.iter().flat_map(|u| u.to_be_bytes()));
            bytes.extend([0, 0, 0x12, 0x34]);
            std::fs::write(dir.path().join(format!("IN20240102_030405_00_+79161234567_0{i}.txt")), bytes).unwrap();
        }
        let r = rc(Service::Files, InboxFormat::Unicode, dir.path());
        let args = vec!["IN20240102_030405_00_+79161234567_00.txt".to_string(), "IN20240102_030405_00_+79161234567_01.txt".to_string()];
        let got = receive(&env(&[("PHONE_ID", "sim1")]), &args, &r);
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        assert_eq!(got.sms.text, text);
        assert_eq!(got.sms.sender, "+79161234567");
        assert_eq!(got.sms.parts_received, 2);
        assert_eq!(got.sms.source, Source::GammuFiles);
        assert_eq!(got.sms.smsc_time.as_deref(), Some("2024-01-02T03:04:05"));
        // The same files give the same id: a re-run is a duplicate.
        assert_eq!(receive(&env(&[("PHONE_ID", "sim1")]), &args, &r).sms.id, got.sms.id);
    }

    #[test]
    fn a_missing_file_falls_back_to_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let r = rc(Service::Files, InboxFormat::Unicode, dir.path());
        let got = receive(&env(&[("SMS_1_NUMBER", "+1"), ("SMS_1_TEXT", "still here")]), &["IN20240102_030405_00_+1_00.txt".into()], &r);
        assert_eq!(got.sms.text, "still here");
        assert_eq!(got.warnings.len(), 1);
    }
}
