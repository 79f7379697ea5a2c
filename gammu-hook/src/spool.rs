//! The spool: every received SMS, durably, until its renter has receipted it — and
//! after, as the record of what was delivered. One SQLite file in WAL mode with
//! `synchronous = FULL`, so a message the hook has written survives a power cut;
//! readers (the forwarder, `spool list`) never block the hook's writer.
//!
//! A message is `pending` (to deliver; `next_ms` says when), `delivered` (with the
//! renter's receipt) or `held` (undeliverable for too long; kept until released).
//! The id is the primary key, so spooling the same message twice is a no-op.
//!
//! If the database cannot take a message (locked past the timeout, disk trouble),
//! the hook writes it as a file in `fallback/` instead; the forwarder moves such
//! files into the database.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ness_core::sms::Sms;
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool database {path}: {source}")]
    Db { path: PathBuf, source: rusqlite::Error },
    #[error("the spool directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS message (
    id           TEXT PRIMARY KEY,
    phone_id     TEXT NOT NULL,
    body         BLOB NOT NULL,
    spooled_ms   INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_ms      INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    envelope     BLOB,
    route        TEXT,
    delivered_ms INTEGER,
    receipt      TEXT
);
CREATE INDEX IF NOT EXISTS message_due ON message(state, next_ms);
";

/// A message the forwarder is to deliver.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub phone_id: String,
    pub body: Vec<u8>,
    pub spooled_ms: i64,
    pub attempts: u32,
    /// The envelope sealed at an earlier attempt, and the route it was sealed for.
    pub envelope: Option<(Vec<u8>, String)>,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered { receipt: String },
    Retry { error: String, next_ms: i64 },
    Hold { error: String },
    /// The provider's `on_sms` hook dropped it: kept in the spool, never delivered.
    Dropped { reason: String },
}

/// Counts by state, for `/metrics` and `spool stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub pending: u64,
    pub delivered: u64,
    pub held: u64,
    pub dropped: u64,
}

/// One row as `spool list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub id: String,
    pub phone_id: String,
    pub state: String,
    pub attempts: u32,
    pub spooled_ms: i64,
    pub last_error: Option<String>,
    pub sender: String,
}

pub struct Spool {
    conn: Connection,
    path: PathBuf,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The database header's read/write versions (bytes 18 and 19) are 2 in WAL mode.
fn is_wal(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 20];
    fs::File::open(path).and_then(|mut f| f.read_exact(&mut header)).is_ok() && header[18] == 2 && header[19] == 2
}

fn persist_wal(conn: &Connection) {
    let mut on: std::os::raw::c_int = 1;
    // SAFETY: a valid open connection's handle, the "main" schema, and a pointer to
    // an int, as SQLITE_FCNTL_PERSIST_WAL documents.
    unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut std::os::raw::c_int).cast(),
        );
    }
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> SpoolError + '_ {
    move |source| SpoolError::Db { path: path.into(), source }
}

fn private_dir(dir: &Path) -> Result<(), SpoolError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SpoolError::Io { path: dir.into(), source })
}

impl Spool {
    /// Open (creating if needed) the spool. Messages are private: the directory is
    /// created 0700 and the database 0600.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Spool, SpoolError> {
        let db = |source| SpoolError::Db { path: path.into(), source };
        if let Some(dir) = path.parent() {
            private_dir(dir)?;
        }
        if !path.exists() {
            // Create it 0600 before SQLite does (with the umask's mode).
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| SpoolError::Io { path: path.into(), source })?;
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(db)?;
        conn.busy_timeout(busy_timeout).map_err(db)?;
        // WAL is remembered by the file: set it only when the header does not
        // already say so (asking again costs the hook a few hundred µs). FULL:
        // fsync the WAL at each commit, so a committed message survives power loss.
        if !is_wal(path) {
            conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        // The hook is a short-lived process and, when the forwarder is not running,
        // the last one to close the file. SQLite would then checkpoint (two more
        // fsyncs) and delete the WAL (an unlink and, next time, a directory fsync):
        // milliseconds gammu-smsd waits for. So: no checkpoint at close, and the
        // WAL file stays. The running forwarder checkpoints every second
        // ([`Spool::checkpoint`]); SQLite's own every-1000-pages checkpoint bounds
        // the WAL while it is stopped.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true).map_err(db)?;
        persist_wal(&conn);
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Spool { conn, path: path.into() })
    }


    /// Spool messages in one transaction. Returns how many were new.
    pub fn add(&mut self, messages: &[Sms]) -> Result<usize, SpoolError> {
        let now = now_ms();
        let tx = self.conn.transaction().map_err(db_err(&self.path))?;
        let mut added = 0;
        {
            let mut ins = tx
                .prepare_cached("INSERT OR IGNORE INTO message (id, phone_id, body, spooled_ms) VALUES (?1, ?2, ?3, ?4)")
                .map_err(db_err(&self.path))?;
            for m in messages {
                added += ins
                    .execute(params![m.id, m.phone_id, m.to_json(), now])
                    .map_err(db_err(&self.path))?;
            }
        }
        tx.commit().map_err(db_err(&self.path))?;
        Ok(added)
    }

    /// Pending messages due at `now`, oldest first, skipping ids in `busy`.
    pub fn due(&self, now: i64, limit: usize, busy: &dyn Fn(&str) -> bool) -> Result<Vec<Due>, SpoolError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, phone_id, body, spooled_ms, attempts, envelope, route FROM message \
                 WHERE state = 'pending' AND next_ms <= ?1 ORDER BY next_ms, spooled_ms LIMIT ?2",
            )
            .map_err(db_err(&self.path))?;
        let rows = st
            .query_map(params![now, (limit * 2) as i64], |r| {
                let envelope: Option<Vec<u8>> = r.get(5)?;
                let route: Option<String> = r.get(6)?;
                Ok(Due {
                    id: r.get(0)?,
                    phone_id: r.get(1)?,
                    body: r.get(2)?,
                    spooled_ms: r.get(3)?,
                    attempts: r.get(4)?,
                    envelope: envelope.zip(route),
                })
            })
            .map_err(db_err(&self.path))?;
        let mut out = Vec::new();
        for row in rows {
            let d = row.map_err(db_err(&self.path))?;
            if !busy(&d.id) {
                out.push(d);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The earliest `next_ms` of a pending message, if any.
    pub fn next_due(&self) -> Result<Option<i64>, SpoolError> {
        self.conn
            .query_row("SELECT MIN(next_ms) FROM message WHERE state = 'pending'", [], |r| r.get(0))
            .map_err(db_err(&self.path))
    }

    /// Remember sealed envelopes before they are sent, so every retry (also after
    /// a crash) sends the same bytes and the inbox can recognise a repeat.
    pub fn store_envelopes(&mut self, sealed: &[(String, Vec<u8>, String)]) -> Result<(), SpoolError> {
        if sealed.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(db_err(&self.path))?;
        {
            let mut up = tx
                .prepare_cached("UPDATE message SET envelope = ?2, route = ?3 WHERE id = ?1")
                .map_err(db_err(&self.path))?;
            for (id, envelope, route) in sealed {
                up.execute(params![id, envelope, route])
                    .map_err(db_err(&self.path))?;
            }
        }
        tx.commit().map_err(db_err(&self.path))
    }

    /// Record the outcomes of a batch of attempts in one transaction.
    pub fn finish(&mut self, outcomes: &[(String, Outcome)]) -> Result<(), SpoolError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let tx = self.conn.transaction().map_err(db_err(&self.path))?;
        for (id, outcome) in outcomes {
            let r = match outcome {
                Outcome::Delivered { receipt } => tx.execute(
                    "UPDATE message SET state = 'delivered', attempts = attempts + 1, delivered_ms = ?2, \
                     receipt = ?3, last_error = NULL WHERE id = ?1",
                    params![id, now, receipt],
                ),
                Outcome::Retry { error, next_ms } => tx.execute(
                    "UPDATE message SET attempts = attempts + 1, next_ms = ?2, last_error = ?3 WHERE id = ?1",
                    params![id, next_ms, error],
                ),
                Outcome::Hold { error } => tx.execute(
                    "UPDATE message SET state = 'held', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                    params![id, error],
                ),
                Outcome::Dropped { reason } => tx.execute(
                    "UPDATE message SET state = 'dropped', last_error = ?2 WHERE id = ?1",
                    params![id, format!("dropped by on_sms: {reason}")],
                ),
            };
            r.map_err(db_err(&self.path))?;
        }
        tx.commit().map_err(db_err(&self.path))
    }

    /// Copy the WAL into the database without waiting for anyone (PASSIVE), so the
    /// hook's commits stay one fsync and the next opener has little to recover.
    pub fn checkpoint(&self) -> Result<(), SpoolError> {
        self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).map_err(db_err(&self.path))
    }

    pub fn counts(&self) -> Result<Counts, SpoolError> {
        let mut c = Counts::default();
        let mut st = self.conn.prepare_cached("SELECT state, COUNT(*) FROM message GROUP BY state").map_err(db_err(&self.path))?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(db_err(&self.path))?;
        for row in rows {
            let (state, n) = row.map_err(db_err(&self.path))?;
            match state.as_str() {
                "pending" => c.pending = n as u64,
                "delivered" => c.delivered = n as u64,
                "held" => c.held = n as u64,
                "dropped" => c.dropped = n as u64,
                _ => {}
            }
        }
        Ok(c)
    }

    /// Messages in `state` (all states if `None`), newest first.
    pub fn list(&self, state: Option<&str>, limit: usize) -> Result<Vec<Listed>, SpoolError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, phone_id, state, attempts, spooled_ms, last_error, body FROM message \
                 WHERE ?1 IS NULL OR state = ?1 ORDER BY spooled_ms DESC LIMIT ?2",
            )
            .map_err(db_err(&self.path))?;
        let rows = st
            .query_map(params![state, limit as i64], |r| {
                let body: Vec<u8> = r.get(6)?;
                Ok(Listed {
                    id: r.get(0)?,
                    phone_id: r.get(1)?,
                    state: r.get(2)?,
                    attempts: r.get(3)?,
                    spooled_ms: r.get(4)?,
                    last_error: r.get(5)?,
                    sender: Sms::from_json(&body).map(|m| m.sender).unwrap_or_default(),
                })
            })
            .map_err(db_err(&self.path))?;
        rows.collect::<Result<_, _>>().map_err(db_err(&self.path))
    }

    /// Make held messages (all, or those ids) pending again, due now.
    pub fn release(&mut self, ids: &[String]) -> Result<usize, SpoolError> {
        if ids.is_empty() {
            return self
                .conn
                .execute("UPDATE message SET state = 'pending', next_ms = 0 WHERE state = 'held'", [])
                .map_err(db_err(&self.path));
        }
        let mut n = 0;
        for id in ids {
            n += self
                .conn
                .execute("UPDATE message SET state = 'pending', next_ms = 0 WHERE state = 'held' AND id = ?1", [id])
                .map_err(db_err(&self.path))?;
        }
        Ok(n)
    }

    /// The stored body of one message.
    pub fn body(&self, id: &str) -> Result<Option<Vec<u8>>, SpoolError> {
        self.conn
            .query_row("SELECT body FROM message WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(db_err(&self.path))
    }
}

/// Write a message as `<dir>/<id>.json`, durably (temp file, fsync, rename, fsync
/// the directory), for when the database cannot take it.
pub fn write_fallback(dir: &Path, sms: &Sms) -> Result<PathBuf, SpoolError> {
    let io = |source| SpoolError::Io { path: dir.into(), source };
    private_dir(dir)?;
    let tmp = dir.join(format!(".{}.{}.tmp", sms.id, std::process::id()));
    let dst = dir.join(format!("{}.json", sms.id));
    let mut f = fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
    f.write_all(&sms.to_json()).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, &dst).map_err(io)?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(dst)
}

/// Move fallback files into the spool; each file is removed only after its
/// message is committed. Unreadable files are left where they are and reported.
pub fn import_fallback(spool: &mut Spool, dir: &Path) -> Result<(usize, Vec<String>), SpoolError> {
    let mut problems = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, problems)),
        Err(source) => return Err(SpoolError::Io { path: dir.into(), source }),
    };
    let mut files = Vec::new();
    let mut messages = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        match fs::read(&path).map_err(|e| e.to_string()).and_then(|b| Sms::from_json(&b).map_err(|e| e.to_string())) {
            Ok(m) => {
                messages.push(m);
                files.push(path);
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    let added = spool.add(&messages)?;
    for f in files {
        let _ = fs::remove_file(f);
    }
    Ok((added, problems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ness_core::sms::Source;

    fn sms(n: u8) -> Sms {
        Sms {
            id: Sms::derive_id(&[&n.to_string()]),
            phone_id: "sim1".into(),
            sender: "+1555".into(),
            text: format!("text {n}"),
            binary: None,
            smsc_time: None,
            received_at: "2026-11-22T00:00:00Z".into(),
            parts_expected: 1,
            parts_received: 1,
            source: Source::GammuEnv,
            tags: Vec::new(),
        }
    }

    #[test]
    fn duplicates_are_ignored_and_states_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(&dir.path().join("s/spool.db"), Duration::from_secs(1)).unwrap();
        assert_eq!(s.add(&[sms(1), sms(2)]).unwrap(), 2);
        assert_eq!(s.add(&[sms(1)]).unwrap(), 0, "the same message twice is stored once");
        let due = s.due(now_ms(), 10, &|_| false).unwrap();
        assert_eq!(due.len(), 2);
        s.finish(&[
            (due[0].id.clone(), Outcome::Delivered { receipt: "{}".into() }),
            (due[1].id.clone(), Outcome::Hold { error: "x".into() }),
        ])
        .unwrap();
        assert_eq!(s.counts().unwrap(), Counts { pending: 0, delivered: 1, held: 1, dropped: 0 });
        assert_eq!(s.release(&[]).unwrap(), 1);
        assert_eq!(s.counts().unwrap().pending, 1);
        let mode = std::fs::metadata(dir.path().join("s/spool.db")).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o077, 0, "the spool is private");
    }

    #[test]
    fn fallback_files_move_into_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let fb = dir.path().join("fallback");
        write_fallback(&fb, &sms(7)).unwrap();
        std::fs::write(fb.join("broken.json"), b"{not json").unwrap();
        let mut s = Spool::open(&dir.path().join("spool.db"), Duration::from_secs(1)).unwrap();
        let (n, problems) = import_fallback(&mut s, &fb).unwrap();
        assert_eq!(n, 1);
        assert_eq!(problems.len(), 1, "a broken file is reported and left: {problems:?}");
        assert!(fb.join("broken.json").exists());
        assert!(!fb.join(format!("{}.json", sms(7).id)).exists());
        assert_eq!(Sms::from_json(&s.body(&sms(7).id).unwrap().unwrap()).unwrap().text, "text 7");
    }
}
