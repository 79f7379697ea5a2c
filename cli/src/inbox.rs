//! `ness inbox serve` and `ness inbox read`: the renter's end of the SMS pipeline.
//!
//! `serve` takes deliveries (`POST /v1/sms`, [`ness_core::sms::Delivery`]) from
//! the providers it trusts, checks the sender's signature, stores the envelope still
//! sealed in SQLite, and answers with a receipt signed by the renter for exactly
//! those bytes. It is idempotent on the message id: a repeat (a forwarder that
//! crashed before recording the receipt) is stored once and answered with the same
//! receipt. Writes are group-committed: one fsync for all the deliveries waiting.
//!
//! `read` opens the stored envelopes with the renter's key and lists the messages.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use clap::{Args, Subcommand};
use ed25519_dalek::{SigningKey, VerifyingKey};
use ness_core::envelope::{KeyRole, Keyfile, Receipt, ReceiptTo, b64u, box_secret, open, receipt::msg_hash, sign_public, sign_secret};
use ness_core::sms::delivery::Checked;
use ness_core::sms::{Delivery, Sms};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::{Failure, Output};

#[derive(Subcommand, Debug)]
pub enum InboxCommand {
    /// Receive sealed SMS from providers and answer with signed receipts.
    Serve(ServeArgs),
    /// Decrypt and list the received messages.
    Read(ReadArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8470")]
    pub listen: SocketAddr,
    /// The inbox database (created 0600).
    #[arg(long)]
    pub db: PathBuf,
    /// The renter's key file: its Ed25519 key signs the receipts.
    #[arg(long)]
    pub keyfile: PathBuf,
    /// A provider allowed to deliver: its Ed25519 public key (base64url) or a key
    /// file holding it. Repeat for several.
    #[arg(long = "provider")]
    pub providers: Vec<String>,
    /// Accept any provider whose signature verifies (for testing).
    #[arg(long, conflicts_with = "providers")]
    pub any_provider: bool,
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    #[arg(long)]
    pub db: PathBuf,
    /// The renter's key file: its X25519 key opens the envelopes.
    #[arg(long)]
    pub keyfile: PathBuf,
    /// Only messages not yet marked read.
    #[arg(long)]
    pub unread: bool,
    /// Mark the listed messages read.
    #[arg(long)]
    pub mark_read: bool,
    /// At most this many, oldest first.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS envelope (
    message_id  TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    envelope    BLOB NOT NULL,
    msg_hash    TEXT NOT NULL,
    receipt     TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    read        INTEGER NOT NULL DEFAULT 0
);
";

fn open_db(path: &Path) -> Result<Connection, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: rusqlite::Error| Failure::error(format!("the inbox database {}: {e}", path.display()));
    if !path.exists() {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Failure::error(format!("cannot create {}: {e}", path.display())))?;
    }
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
    conn.execute_batch(SCHEMA).map_err(err)?;
    Ok(conn)
}

pub async fn run(c: InboxCommand, out: &Output) -> Result<(), Failure> {
    match c {
        InboxCommand::Serve(a) => serve(a).await,
        InboxCommand::Read(a) => read(a, out),
    }
}

// ---- serve -------------------------------------------------------------------

struct Job {
    checked: Checked,
    from: String,
    reply: oneshot::Sender<Result<String, String>>,
}

struct App {
    providers: Option<Vec<VerifyingKey>>,
    jobs: mpsc::Sender<Job>,
}

fn provider_key(spec: &str) -> Result<VerifyingKey, Failure> {
    let bytes = if Path::new(spec).exists() {
        Keyfile::read(Path::new(spec)).and_then(|k| k.key(KeyRole::SignPublic, None)).map_err(|e| Failure::error(e.to_string()))?
    } else {
        b64u::decode(spec).map_err(|e| Failure::usage(format!("--provider {spec:?}: neither a file nor base64url ({e})")))?
    };
    sign_public(&bytes).map_err(|e| Failure::usage(format!("--provider {spec:?}: {e}")))
}

async fn serve(a: ServeArgs) -> Result<(), Failure> {
    let kf = Keyfile::read(&a.keyfile).map_err(|e| Failure::error(e.to_string()))?;
    let signer = sign_secret(&kf.key(KeyRole::SignPrivate, None).map_err(|e| Failure::error(e.to_string()))?)
        .map_err(|e| Failure::error(e.to_string()))?;
    let providers = if a.any_provider {
        None
    } else if a.providers.is_empty() {
        return Err(Failure::usage("name the providers allowed to deliver (--provider KEY), or --any-provider"));
    } else {
        Some(a.providers.iter().map(|p| provider_key(p)).collect::<Result<Vec<_>, _>>()?)
    };
    let conn = open_db(&a.db)?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("inbox-writer".into())
        .spawn(move || writer(conn, signer, rx))
        .map_err(|e| Failure::error(format!("cannot start the writer: {e}")))?;
    let app = Arc::new(App { providers, jobs: tx });
    let router = Router::new()
        .route("/v1/sms", post(deliver))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(256 * 1024))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| Failure::error(format!("cannot listen on {}: {e}", a.listen)))?;
    let local = listener.local_addr().map_err(|e| Failure::error(e.to_string()))?;
    eprintln!("ness inbox: listening on http://{local}/v1/sms, storing in {}", a.db.display());
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Failure::error(format!("the inbox server stopped: {e}")))
}

async fn deliver(State(app): State<Arc<App>>, body: Bytes) -> (StatusCode, String) {
    let d: Delivery = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not a delivery: {e}\n")),
    };
    let checked = match d.check() {
        Ok(c) => c,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    if let Some(allowed) = &app.providers
        && !allowed.contains(&checked.sender)
    {
        return (StatusCode::FORBIDDEN, format!("provider {} is not allowed to deliver here\n", d.from));
    }
    let (reply, answer) = oneshot::channel();
    if app.jobs.send(Job { checked, from: d.from, reply }).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the inbox is shutting down\n".into());
    }
    match answer.await {
        Ok(Ok(receipt)) => (StatusCode::OK, receipt),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the inbox writer stopped\n".into()),
    }
}

/// The one thread that writes: takes every job waiting, stores the new ones in one
/// transaction, and answers only after the commit.
fn writer(mut conn: Connection, signer: SigningKey, jobs: mpsc::Receiver<Job>) {
    let from = b64u::encode(signer.verifying_key().as_bytes());
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let result = store_batch(&mut conn, &signer, &from, &batch);
        match result {
            Ok(receipts) => {
                for (job, r) in batch.into_iter().zip(receipts) {
                    let _ = job.reply.send(r);
                }
            }
            Err(e) => {
                eprintln!("ness inbox: cannot store: {e}");
                for job in batch {
                    let _ = job.reply.send(Err(format!("cannot store: {e}")));
                }
            }
        }
    }
}

fn store_batch(conn: &mut Connection, signer: &SigningKey, from: &str, batch: &[Job]) -> rusqlite::Result<Vec<Result<String, String>>> {
    let tx = conn.transaction()?;
    let mut out = Vec::with_capacity(batch.len());
    let now = OffsetDateTime::now_utc();
    for job in batch {
        let c = &job.checked;
        let hash = msg_hash(&c.envelope);
        let stored: Option<(String, String)> = tx
            .query_row("SELECT msg_hash, receipt FROM envelope WHERE message_id = ?1", [&c.message_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let receipt = |to: &str| {
            Receipt::issue(signer, from, ReceiptTo::Key(to.to_owned()), &c.envelope, now)
                .map(|r| r.canonical(true))
                .map_err(|e| e.to_string())
        };
        match stored {
            // A repeat of what we have: the same receipt.
            Some((h, r)) if h == hash => out.push(Ok(r)),
            // The same message sealed again (the forwarder lost its envelope): it is
            // already stored once; receipt these bytes so the sender can finish.
            Some(_) => out.push(receipt(&job.from)),
            None => match receipt(&job.from) {
                Ok(r) => {
                    tx.execute(
                        "INSERT INTO envelope (message_id, provider, envelope, msg_hash, receipt, received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![c.message_id, job.from, c.envelope, hash, r, (now.unix_timestamp_nanos() / 1_000_000) as i64],
                    )?;
                    out.push(Ok(r));
                }
                Err(e) => out.push(Err(e)),
            },
        }
    }
    tx.commit()?;
    Ok(out)
}

// ---- read --------------------------------------------------------------------

fn read(a: ReadArgs, out: &Output) -> Result<(), Failure> {
    let kf = Keyfile::read(&a.keyfile).map_err(|e| Failure::error(e.to_string()))?;
    let secret = box_secret(&kf.key(KeyRole::BoxPrivate, None).map_err(|e| Failure::error(e.to_string()))?)
        .map_err(|e| Failure::error(e.to_string()))?;
    if !a.db.exists() {
        return Err(Failure::error(format!("no inbox database at {} (ness inbox serve creates it)", a.db.display())));
    }
    let conn = open_db(&a.db)?;
    let err = |e: rusqlite::Error| Failure::error(format!("the inbox database {}: {e}", a.db.display()));
    let mut st = conn
        .prepare(
            "SELECT message_id, provider, envelope, received_ms, read FROM envelope \
             WHERE ?1 = 0 OR read = 0 ORDER BY received_ms, message_id LIMIT ?2",
        )
        .map_err(err)?;
    let rows: Vec<(String, String, Vec<u8>, i64, bool)> = st
        .query_map(params![a.unread as i64, a.limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let mut listed = Vec::new();
    let mut json_rows = Vec::new();
    let mut failures = 0;
    for (id, provider, envelope, received_ms, was_read) in rows {
        let opened = open(&secret, &envelope).map_err(|e| e.to_string()).and_then(|o| {
            let version = o.version;
            Sms::from_json(&o.plaintext).map(|m| (version, m)).map_err(|e| format!("not a message: {e}"))
        });
        match opened {
            Ok((version, m)) => {
                if out.json {
                    json_rows.push(json!({
                        "message_id": id, "provider": provider, "envelope_version": version,
                        "stored_ms": received_ms, "read": was_read, "sender": m.sender, "text": m.text,
                        "binary": m.binary, "phone_id": m.phone_id, "smsc_time": m.smsc_time,
                        "received_at": m.received_at, "parts_expected": m.parts_expected,
                        "parts_received": m.parts_received, "source": m.source, "tags": m.tags,
                    }));
                } else {
                    let flag = if was_read { ' ' } else { '*' };
                    let tags = if m.tags.is_empty() { String::new() } else { format!("[{}] ", m.tags.join(",")) };
                    println!("{flag} {}  {:<16}  {:<8}  {tags}{}", m.received_at, m.sender, m.phone_id, m.text);
                }
                listed.push(id);
            }
            Err(e) => {
                failures += 1;
                eprintln!("ness: message {id}: cannot open: {e}");
            }
        }
    }
    if out.json {
        out.json_value(&serde_json::Value::Array(json_rows));
    }
    if a.mark_read && !listed.is_empty() {
        let tx = conn.unchecked_transaction().map_err(err)?;
        for id in &listed {
            tx.execute("UPDATE envelope SET read = 1 WHERE message_id = ?1", [id]).map_err(err)?;
        }
        tx.commit().map_err(err)?;
    }
    if failures > 0 {
        return Err(Failure::error(format!("{failures} message(s) could not be opened with this key")));
    }
    Ok(())
}
