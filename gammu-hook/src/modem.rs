//! `ness-gammu-hook modem`: reading SMS from a modem directly, for providers without
//! gammu (3GPP TS 27.005, PDU mode). The dialogue:
//!
//! `AT` → `ATE0` → `AT+CMEE=1` → `AT+CMGF=0` → `AT+CPMS="SM","SM","SM"` →
//! `AT+CNMI=2,1,0,0,0` (new messages are stored and announced as `+CMTI`), then on
//! every `+CMTI`, and every `poll_secs` as a fallback, `AT+CMGL=4`: each received
//! PDU is decoded ([`ness_core::sms::pdu`]), parts are joined, every complete message
//! is committed to the spool, and only then are its parts deleted (`AT+CMGD=<i>`).
//! A malformed PDU is logged and left on the SIM; an unresponsive modem is reopened.
//! `+CMTI` may arrive anywhere, even inside another command's answer.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ness_core::sms::{Assembled, Assembler, Sms, Source, pdu};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::Config;
use crate::spool::{Spool, SpoolError};

#[derive(Debug, thiserror::Error)]
pub enum ModemError {
    #[error("no modem device: set [modem] device or pass --device")]
    NoDevice,
    #[error("cannot open the modem {device}: {message}")]
    Open { device: String, message: String },
    #[error("the modem did not answer {command:?} within {timeout_ms} ms")]
    Timeout { command: String, timeout_ms: u128 },
    #[error("the modem answered {command:?} with {answer:?}")]
    Refused { command: String, answer: String },
    #[error("the modem connection: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// An AT command channel: commands with deadlines, final result codes, and
/// `+CMTI` notifications noticed wherever they appear.
pub struct At<S> {
    io: S,
    buf: Vec<u8>,
    lines: VecDeque<String>,
    /// A `+CMTI` was seen since the last listing.
    pub announced: bool,
}

fn is_final_error(line: &str) -> bool {
    line == "ERROR" || line.starts_with("+CMS ERROR") || line.starts_with("+CME ERROR") || line == "NO CARRIER"
}

impl<S: AsyncRead + AsyncWrite + Unpin> At<S> {
    pub fn new(io: S) -> Self {
        At { io, buf: Vec::new(), lines: VecDeque::new(), announced: false }
    }

    /// The next non-empty line, or `None` at the deadline.
    async fn line(&mut self, deadline: tokio::time::Instant) -> Result<Option<String>, ModemError> {
        loop {
            if let Some(l) = self.lines.pop_front() {
                return Ok(Some(l));
            }
            let mut chunk = [0u8; 512];
            let n = match tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await {
                Err(_) => return Ok(None),
                Ok(r) => r?,
            };
            if n == 0 {
                return Err(ModemError::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the modem closed the line")));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            while let Some(pos) = self.buf.iter().position(|&b| b == b'\r' || b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]).trim().to_owned();
                if !text.is_empty() {
                    self.lines.push_back(text);
                }
            }
        }
    }

    fn note_urc(&mut self, line: &str) -> bool {
        if line.starts_with("+CMTI:") {
            self.announced = true;
            return true;
        }
        false
    }

    /// Send `command` and collect its answer lines up to `OK`.
    pub async fn command(&mut self, command: &str, timeout: Duration) -> Result<Vec<String>, ModemError> {
        // Anything left over is a notification or noise from before.
        while let Some(l) = self.lines.pop_front() {
            self.note_urc(&l);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        // A modem holding the line (flow control) must not stall the reader either.
        let send = async {
            self.io.write_all(format!("{command}\r").as_bytes()).await?;
            self.io.flush().await
        };
        match tokio::time::timeout_at(deadline, send).await {
            Ok(r) => r?,
            Err(_) => return Err(ModemError::Timeout { command: command.into(), timeout_ms: timeout.as_millis() }),
        }
        let mut answer = Vec::new();
        loop {
            let Some(line) = self.line(deadline).await? else {
                return Err(ModemError::Timeout { command: command.into(), timeout_ms: timeout.as_millis() });
            };
            if line == "OK" {
                return Ok(answer);
            }
            if is_final_error(&line) {
                return Err(ModemError::Refused { command: command.into(), answer: line });
            }
            if self.note_urc(&line) || line.eq_ignore_ascii_case(command) {
                continue; // a notification, or our own echo
            }
            answer.push(line);
        }
    }

    /// Wait up to `wait` for a `+CMTI`; other unsolicited lines are ignored.
    pub async fn wait_for_announcement(&mut self, wait: Duration) -> Result<bool, ModemError> {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.announced {
            match self.line(deadline).await? {
                Some(l) => {
                    if !self.note_urc(&l) {
                        tracing::debug!("modem said {l:?}");
                    }
                }
                None => break,
            }
        }
        Ok(self.announced)
    }
}

/// One `+CMGL` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub index: u32,
    pub stat: u8,
    pub pdu: String,
}

/// The entries of an `AT+CMGL=4` answer (`+CMGL: <i>,<stat>,[<alpha>],<len>` + PDU line).
pub fn parse_listing(lines: &[String]) -> Vec<Listed> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(head) = lines[i].strip_prefix("+CMGL:") {
            let mut f = head.split(',').map(str::trim);
            let index = f.next().and_then(|v| v.parse().ok());
            let stat = f.next().and_then(|v| v.parse().ok());
            if let (Some(index), Some(stat), Some(pdu)) = (index, stat, lines.get(i + 1))
                && !pdu.starts_with("+CMGL:")
            {
                out.push(Listed { index, stat, pdu: pdu.clone() });
                i += 1;
            }
        }
        i += 1;
    }
    out
}

/// The [`Sms`] for an assembled message; the id is stable across re-listings
/// (same indexes and PDUs), so a crash between spooling and deleting is harmless.
pub fn to_sms(m: &Assembled<(u32, String)>, phone_id: &str) -> Sms {
    let origin: Vec<String> = m.tags.iter().map(|(i, p)| format!("{i}:{p}")).collect();
    let mut id_parts: Vec<&str> = vec![phone_id, "modem", &m.sender];
    id_parts.extend(origin.iter().map(String::as_str));
    Sms {
        id: Sms::derive_id(&id_parts),
        phone_id: phone_id.into(),
        sender: m.sender.clone(),
        text: m.text.clone(),
        binary: m.binary.as_deref().map(crate::receive::base64_encode),
        smsc_time: Some(m.scts.rfc3339()),
        received_at: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        parts_expected: m.parts_expected,
        parts_received: m.parts_received,
        source: Source::Modem,
        tags: Vec::new(),
    }
}

/// What the reader keeps between listings.
pub struct Reader {
    phone_id: String,
    timeout: Duration,
    assembler: Assembler<(u32, String)>,
    /// (index, PDU) already taken in, or rejected: not looked at again.
    seen: HashSet<(u32, String)>,
}

impl Reader {
    pub fn new(phone_id: &str, command_timeout: Duration, multipart_timeout: Duration) -> Reader {
        Reader { phone_id: phone_id.into(), timeout: command_timeout, assembler: Assembler::new(multipart_timeout), seen: HashSet::new() }
    }

    /// Start-up dialogue.
    pub async fn init<S: AsyncRead + AsyncWrite + Unpin>(&self, at: &mut At<S>, storage: &str) -> Result<(), ModemError> {
        let mut alive = Err(ModemError::Timeout { command: "AT".into(), timeout_ms: self.timeout.as_millis() });
        for _ in 0..3 {
            alive = at.command("AT", self.timeout).await;
            if alive.is_ok() {
                break;
            }
        }
        alive?;
        at.command("ATE0", self.timeout).await?;
        if let Err(e) = at.command("AT+CMEE=1", self.timeout).await {
            tracing::warn!("{e} (numeric errors unavailable)");
        }
        at.command("AT+CMGF=0", self.timeout).await?;
        at.command(&format!("AT+CPMS=\"{storage}\",\"{storage}\",\"{storage}\""), self.timeout).await?;
        if let Err(e) = at.command("AT+CNMI=2,1,0,0,0", self.timeout).await {
            tracing::warn!("{e}: no new-message notifications, polling only");
        }
        Ok(())
    }

    /// List the storage, take in new parts, spool complete (and timed-out) messages,
    /// then delete their parts. Returns the messages spooled.
    pub async fn collect<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        at: &mut At<S>,
        spool: &mut Spool,
    ) -> Result<Vec<Sms>, ModemError> {
        at.announced = false;
        let lines = at.command("AT+CMGL=4", self.timeout).await?;
        let now = Instant::now();
        let mut complete = Vec::new();
        for entry in parse_listing(&lines) {
            let key = (entry.index, entry.pdu.clone());
            if entry.stat > 1 || self.seen.contains(&key) {
                continue; // stored outgoing messages, or already taken in
            }
            self.seen.insert(key.clone());
            match pdu::decode_hex(&entry.pdu) {
                Ok(part) => complete.extend(self.assembler.push(part, key, now)),
                Err(e) => tracing::error!("SIM index {}: malformed PDU rejected ({e}); it stays on the SIM", entry.index),
            }
        }
        complete.extend(self.assembler.expire(now));
        if complete.is_empty() {
            return Ok(Vec::new());
        }
        let messages: Vec<Sms> = complete.iter().map(|m| to_sms(m, &self.phone_id)).collect();
        // Durable first; only then may the SIM copies go.
        tokio::task::block_in_place(|| spool.add(&messages))?;
        for m in &complete {
            if m.parts_received < m.parts_expected {
                tracing::warn!("released an incomplete message from {:?}: {} of {} parts", m.sender, m.parts_received, m.parts_expected);
            }
            for (index, pdu) in &m.tags {
                match at.command(&format!("AT+CMGD={index}"), self.timeout).await {
                    Ok(_) => {
                        self.seen.remove(&(*index, pdu.clone()));
                    }
                    Err(e) => tracing::warn!("spooled, but could not delete SIM index {index}: {e}"),
                }
            }
        }
        for s in &messages {
            tracing::info!("spooled {} from {:?}, {} part(s)", s.id, s.sender, s.parts_received);
        }
        Ok(messages)
    }
}

/// Read the modem until `stop`; reopen it after errors.
pub async fn run(config: Config, stop: Arc<AtomicBool>) -> Result<(), ModemError> {
    let m = &config.modem;
    let device = m.device.clone().ok_or(ModemError::NoDevice)?;
    let mut spool = Spool::open(&config.spool.path, Duration::from_millis(config.spool.busy_timeout_ms))?;
    let mut reader = Reader::new(&m.phone_id, Duration::from_millis(m.command_timeout_ms), Duration::from_secs(m.multipart_timeout_secs));
    while !stop.load(Ordering::Relaxed) {
        let opened = tokio_serial::SerialStream::open(&tokio_serial::new(device.to_string_lossy(), m.baud))
            .map_err(|e| ModemError::Open { device: device.display().to_string(), message: e.to_string() });
        let result = match opened {
            Ok(port) => session(&mut At::new(port), &mut reader, &mut spool, &config, &stop).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => break,
            Err(e) => {
                tracing::error!("{e}; reopening the modem in 5 s");
                for _ in 0..50 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    tracing::info!("modem reader stopped");
    Ok(())
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    at: &mut At<S>,
    reader: &mut Reader,
    spool: &mut Spool,
    config: &Config,
    stop: &AtomicBool,
) -> Result<(), ModemError> {
    reader.init(at, &config.modem.storage).await?;
    tracing::info!("modem ready; reading {} messages", config.modem.storage);
    let poll = Duration::from_secs(config.modem.poll_secs.max(1));
    let mut next_poll = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if at.announced || Instant::now() >= next_poll {
            reader.collect(at, spool).await?;
            next_poll = Instant::now() + poll;
        }
        let wait = next_poll.saturating_duration_since(Instant::now()).min(Duration::from_millis(500));
        at.wait_for_announcement(wait).await?;
    }
    Ok(())
}

pub mod fake;

#[cfg(test)]
mod tests {
    use super::*;
    use ness_core::sms::pdu::{Scts, encode_text};

    #[test]
    fn listings_are_parsed_with_and_without_alpha() {
        let lines: Vec<String> = ["+CMGL: 1,0,,24", "AABB", "+CMGL: 3,1,\"x\",30", "CCDD", "+CMGL: 4,0,,9"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let l = parse_listing(&lines);
        assert_eq!(l, vec![Listed { index: 1, stat: 0, pdu: "AABB".into() }, Listed { index: 3, stat: 1, pdu: "CCDD".into() }]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_joins_spools_then_deletes() {
        let (ours, theirs) = tokio::io::duplex(4096);
        let modem = fake::FakeModem::new();
        let control = modem.control();
        tokio::spawn(modem.serve(theirs));
        let scts = Scts { year: 2024, month: 1, day: 2, hour: 3, minute: 4, second: 5, tz_quarters: 4 };
        let long = "Long message [with escapes] ".repeat(12);
        // Parts out of order, a malformed PDU, and a single GSM message.
        let parts = encode_text("+4915112345678", &long, &scts, 0xA7);
        control.store(&parts[1]);
        control.store("0004"); // malformed: ends early
        control.store(&encode_text("MyBank", "Hello €", &scts, 0)[0]);
        control.store(&parts[0]);
        for p in &parts[2..] {
            control.store(p);
        }

        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(&dir.path().join("spool.db"), Duration::from_secs(1)).unwrap();
        let mut at = At::new(ours);
        let mut reader = Reader::new("modem0", Duration::from_secs(2), Duration::from_secs(600));
        reader.init(&mut at, "SM").await.unwrap();
        let got = reader.collect(&mut at, &mut spool).await.unwrap();
        let mut texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
        texts.sort();
        assert_eq!(texts, vec!["Hello €", long.as_str()]);
        assert_eq!(spool.counts().unwrap().pending, 2);
        // Everything but the malformed PDU was deleted, after spooling.
        assert_eq!(control.stored(), vec!["0004".to_string()]);
        // A new message announced by +CMTI is read on the next round.
        control.inject(&encode_text("+1555", "again", &scts, 0)[0]);
        assert!(at.wait_for_announcement(Duration::from_secs(2)).await.unwrap());
        let got = reader.collect(&mut at, &mut spool).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].text, "again");
        assert_eq!(spool.counts().unwrap().pending, 3);
    }
}
