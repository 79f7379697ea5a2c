//! A simulated GSM modem speaking the AT subset the reader uses (and gammu's
//! start-up probes), with an "SM" store of SMS-DELIVER PDUs. It serves any byte
//! stream — an in-memory pipe in unit tests, one end of a PTY pair in end-to-end
//! tests — so the reader can be tried without hardware. [`Control`] puts messages
//! in the store (silently, or announced with `+CMTI` as a network delivery is).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

#[derive(Default)]
struct State {
    store: BTreeMap<u32, String>,
    commands: Vec<String>,
}

impl State {
    fn put(&mut self, pdu: &str) -> u32 {
        let index = (1..).find(|i| !self.store.contains_key(i)).expect("a free index");
        self.store.insert(index, pdu.to_owned());
        index
    }
}

pub struct FakeModem {
    state: Arc<Mutex<State>>,
    urc_tx: mpsc::UnboundedSender<u32>,
    urc_rx: mpsc::UnboundedReceiver<u32>,
}

/// Handle to a running [`FakeModem`]'s store.
#[derive(Clone)]
pub struct Control {
    state: Arc<Mutex<State>>,
    urc_tx: mpsc::UnboundedSender<u32>,
}

impl Control {
    /// Put a PDU (hex) in the store, as if it had been there all along.
    pub fn store(&self, pdu: &str) -> u32 {
        self.state.lock().expect("fake modem state").put(pdu)
    }

    /// Deliver a PDU: store it and announce it with `+CMTI: "SM",<index>`.
    pub fn inject(&self, pdu: &str) -> u32 {
        let index = self.store(pdu);
        let _ = self.urc_tx.send(index);
        index
    }

    /// The PDUs still stored, by index.
    pub fn stored(&self) -> Vec<String> {
        self.state.lock().expect("fake modem state").store.values().cloned().collect()
    }

    /// Every command received so far.
    pub fn commands(&self) -> Vec<String> {
        self.state.lock().expect("fake modem state").commands.clone()
    }
}

impl Default for FakeModem {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeModem {
    pub fn new() -> FakeModem {
        let (urc_tx, urc_rx) = mpsc::unbounded_channel();
        FakeModem { state: Arc::default(), urc_tx, urc_rx }
    }

    pub fn control(&self) -> Control {
        Control { state: self.state.clone(), urc_tx: self.urc_tx.clone() }
    }

    fn answer(&self, command: &str, echo: &mut bool) -> String {
        let mut st = self.state.lock().expect("fake modem state");
        st.commands.push(command.to_owned());
        let upper = command.to_ascii_uppercase();
        let ok = "\r\nOK\r\n".to_string();
        match upper.as_str() {
            "AT" | "AT+CMEE=1" | "AT+CMGF=0" | "AT+CFUN=1" | "AT+CUSD=1" => ok,
            "ATE0" => {
                *echo = false;
                ok
            }
            "ATE1" => {
                *echo = true;
                ok
            }
            "AT+CGMI" => "\r\nPrivateness\r\n\r\nOK\r\n".into(),
            "AT+CGMM" => "\r\nFake modem\r\n\r\nOK\r\n".into(),
            "AT+CPMS=?" => "\r\n+CPMS: (\"SM\"),(\"SM\"),(\"SM\")\r\n\r\nOK\r\n".into(),
            "AT+CMGL=4" => {
                let mut out = String::new();
                for (i, pdu) in &st.store {
                    let smsc = u8::from_str_radix(pdu.get(..2).unwrap_or("00"), 16).unwrap_or(0) as usize;
                    let tpdu = (pdu.len() / 2).saturating_sub(smsc + 1);
                    out.push_str(&format!("\r\n+CMGL: {i},0,,{tpdu}\r\n{pdu}"));
                }
                out + "\r\n\r\nOK\r\n"
            }
            _ if upper.starts_with("AT+CPMS=") => {
                let n = st.store.len();
                format!("\r\n+CPMS: {n},30,{n},30,{n},30\r\n\r\nOK\r\n")
            }
            _ if upper.starts_with("AT+CNMI=") => ok,
            _ if upper.starts_with("AT+CMGD=") => match upper[8..].parse::<u32>().ok().and_then(|i| st.store.remove(&i)) {
                Some(_) => ok,
                None => "\r\n+CMS ERROR: 321\r\n".into(),
            },
            _ if upper.starts_with("AT+CMGR=") => match upper[8..].parse::<u32>().ok().and_then(|i| st.store.get(&i)) {
                Some(pdu) => format!("\r\n+CMGR: 0,,{}\r\n{pdu}\r\n\r\nOK\r\n", pdu.len() / 2),
                None => "\r\n+CMS ERROR: 321\r\n".into(),
            },
            _ => "\r\nERROR\r\n".into(),
        }
    }

    /// Answer commands on `io` until the other side closes it.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut self, mut io: S) {
        let mut echo = true;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            tokio::select! {
                r = io.read(&mut chunk) => {
                    let Ok(n) = r else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(pos) = buf.iter().position(|&b| b == b'\r' || b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let command = String::from_utf8_lossy(&line[..line.len() - 1]).trim().to_owned();
                        if command.is_empty() {
                            continue;
                        }
                        let mut out = if echo { format!("{command}\r") } else { String::new() };
                        out.push_str(&self.answer(&command, &mut echo));
                        if io.write_all(out.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
                Some(index) = self.urc_rx.recv() => {
                    if io.write_all(format!("\r\n+CMTI: \"SM\",{index}\r\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
