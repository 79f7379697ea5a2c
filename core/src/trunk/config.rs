//! A trunk's configuration, one format for the three hosts (the `ness-trunk`
//! daemon's TOML file; the Asterisk and Kamailio modules will read the same
//! `[[trunk]]` tables). Every key is checked and named in its error.
//!
//! ```toml
//! [[trunk]]
//! name = "berlin"
//! me = "02…"                      # this visor's public key (66 hex)
//! peer = "03…"                    # the peer's visor
//! secret_file = "/etc/ness/trunk-berlin.secret"   # mode 0600; 32+ bytes, hex or raw
//! local_address = "127.77.0.1"    # this PBX binds here
//! peer_address = "127.77.0.2"     # the peer PBX's address on this host, owned by the relay
//! sip_ports = [5060]
//! rtp_ports = "10000-10099"
//! keepalive_ms = 3000
//! listen = "127.0.0.1:7100"       # the peer dials us here (a stream carrier) …
//! # listen_udp = "127.0.0.1:7100" # … or through a faithful-UDP forward …
//! # … or we dial it (exactly one of listen / listen_udp / dial):
//! # dial = { carrier = "socks5", proxy = "127.0.0.1:1080", target = "127.0.0.1:7100", passcode_file = "…" }
//! # dial = { carrier = "tcp", addr = "127.0.0.1:7200" }
//! # dial = { carrier = "udp", forward = "127.0.0.1:7300" }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::carrier::{Carrier, StreamCarrier};
use super::hello::{TrunkIdentity, TrunkSecret, VisorKey};
use super::link::LinkTimings;
use super::queue::MediaQueue;
use super::relay::RelayPorts;

/// The file: its trunks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkFile {
    #[serde(rename = "trunk", default)]
    pub trunks: Vec<TrunkSection>,
}

/// One `[[trunk]]` table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkSection {
    pub name: String,
    pub me: String,
    pub peer: String,
    pub secret_file: PathBuf,
    pub local_address: IpAddr,
    pub peer_address: IpAddr,
    #[serde(default = "default_sip")]
    pub sip_ports: Vec<u16>,
    pub rtp_ports: String,
    #[serde(default = "default_keepalive")]
    pub keepalive_ms: u64,
    #[serde(default = "default_media_queue")]
    pub media_queue: usize,
    #[serde(default = "default_media_max_age")]
    pub media_max_age_ms: u64,
    pub listen: Option<SocketAddr>,
    pub listen_udp: Option<SocketAddr>,
    pub dial: Option<DialSection>,
}

fn default_sip() -> Vec<u16> {
    vec![5060]
}
fn default_keepalive() -> u64 {
    3000
}
fn default_media_queue() -> usize {
    MediaQueue::default().limit
}
fn default_media_max_age() -> u64 {
    MediaQueue::default().max_age.as_millis() as u64
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "carrier", rename_all = "lowercase")]
pub enum DialSection {
    Socks5 { proxy: SocketAddr, target: String, passcode_file: Option<PathBuf> },
    Tcp { addr: SocketAddr },
    Udp { forward: SocketAddr },
}

/// How a trunk's relay meets its peer.
#[derive(Clone, Debug)]
pub enum Role {
    /// The peer dials a stream carrier to this TCP address.
    Listen(SocketAddr),
    /// The peer's datagrams arrive at this UDP address (a faithful-UDP forward's target).
    ListenUdp(SocketAddr),
    Dial(Carrier),
}

/// A trunk, checked and ready to run.
#[derive(Clone, Debug)]
pub struct Trunk {
    pub name: String,
    pub id: TrunkIdentity,
    pub ports: RelayPorts,
    pub role: Role,
    pub timings: LinkTimings,
    pub media: MediaQueue,
}

/// Why a trunk configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrunkConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("trunk {trunk:?}: {message}")]
    Invalid { trunk: String, message: String },
}

/// Read a private file (secret, passcode), trimmed: it must not be readable by others.
fn read_private(path: &Path, trunk: &str) -> Result<String, TrunkConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let invalid = |message: String| TrunkConfigError::Invalid { trunk: trunk.to_owned(), message };
    let meta = std::fs::metadata(path).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(invalid(format!("{} is readable by group or others; chmod 600 it", path.display())));
    }
    let raw = std::fs::read(path).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    String::from_utf8(raw).map(|t| t.trim().to_owned()).map_err(|_| invalid(format!("{} is not text", path.display())))
}

/// The trunk secret: hex if it is hex (as `openssl rand -hex 32` writes it), else the text's bytes.
fn read_secret(path: &Path, trunk: &str) -> Result<Vec<u8>, TrunkConfigError> {
    let text = read_private(path, trunk)?;
    Ok(match hex::decode(&text) {
        Ok(b) if !text.is_empty() => b,
        _ => text.into_bytes(),
    })
}

fn port_range(text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let (a, b) = text.trim().split_once('-').unwrap_or((text.trim(), text.trim()));
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b && a > 0).then_some(a..=b)
}

impl TrunkSection {
    pub fn check(self) -> Result<Trunk, TrunkConfigError> {
        let name = self.name.clone();
        let invalid = |message: String| TrunkConfigError::Invalid { trunk: name.clone(), message };
        let me = VisorKey::parse(&self.me).map_err(|e| invalid(format!("me: {e}")))?;
        let peer = VisorKey::parse(&self.peer).map_err(|e| invalid(format!("peer: {e}")))?;
        if me == peer {
            return Err(invalid("me and peer are the same visor".into()));
        }
        let secret = TrunkSecret::new(read_secret(&self.secret_file, &name)?).map_err(|e| invalid(format!("secret_file: {e}")))?;
        if self.local_address == self.peer_address {
            return Err(invalid("local_address and peer_address must differ (the relay owns the peer's)".into()));
        }
        let rtp = port_range(&self.rtp_ports).ok_or_else(|| invalid(format!("rtp_ports {:?} is not a range like 10000-10099", self.rtp_ports)))?;
        if rtp.clone().count() > 10_000 {
            return Err(invalid("rtp_ports spans more than 10000 ports; give trunk calls a narrow range".into()));
        }
        if self.sip_ports.is_empty() || self.sip_ports.iter().any(|p| *p == 0 || rtp.contains(p)) {
            return Err(invalid("sip_ports must be non-zero and outside rtp_ports".into()));
        }
        if !(20..=10_000).contains(&self.media_max_age_ms) {
            return Err(invalid(format!("media_max_age_ms {} is not 20 to 10000", self.media_max_age_ms)));
        }
        if !(500..=60_000).contains(&self.keepalive_ms) {
            return Err(invalid(format!("keepalive_ms {} is not 500 to 60000", self.keepalive_ms)));
        }
        let role = match (self.listen, self.listen_udp, self.dial) {
            (Some(l), None, None) => Role::Listen(l),
            (None, Some(l), None) => Role::ListenUdp(l),
            (None, None, Some(DialSection::Tcp { addr })) => Role::Dial(Carrier::Stream(StreamCarrier::Tcp { addr })),
            (None, None, Some(DialSection::Udp { forward })) => Role::Dial(Carrier::Udp { forward }),
            (None, None, Some(DialSection::Socks5 { proxy, target, passcode_file })) => {
                let auth = match passcode_file {
                    None => None,
                    Some(p) => {
                        // skysocks takes the passcode as either RFC 1929 field.
                        let pass = read_private(&p, &name)?;
                        Some((pass.clone(), pass))
                    }
                };
                Role::Dial(Carrier::Stream(StreamCarrier::Socks5 { proxy, target, auth }))
            }
            _ => return Err(invalid("set exactly one of listen or listen_udp (the peer dials us) or dial (we dial the peer)".into())),
        };
        let keepalive = Duration::from_millis(self.keepalive_ms);
        Ok(Trunk {
            id: TrunkIdentity { me, peer, secret },
            ports: RelayPorts { local: self.local_address, owned: self.peer_address, sip: self.sip_ports, rtp },
            role,
            timings: LinkTimings { keepalive, ..LinkTimings::default() },
            media: MediaQueue { limit: self.media_queue.max(1), max_age: Duration::from_millis(self.media_max_age_ms) },
            name: self.name,
        })
    }
}

/// Read and check a trunk file.
pub fn load(path: &Path) -> Result<Vec<Trunk>, TrunkConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| TrunkConfigError::Read { path: path.to_owned(), source })?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Vec<Trunk>, TrunkConfigError> {
    let f: TrunkFile = toml::from_str(text).map_err(|e| TrunkConfigError::Parse { path: path.to_owned(), message: e.to_string() })?;
    let mut names = std::collections::HashSet::new();
    let mut out = Vec::new();
    for t in f.trunks {
        if !names.insert(t.name.clone()) {
            return Err(TrunkConfigError::Invalid { trunk: t.name, message: "the name is used twice".into() });
        }
        out.push(t.check()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const A: &str = "02d46e5a9b0c7e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70b706";
    const B: &str = "0311223344556677889900aabbccddeeff00112233445566778899aabbccddeeff";

    fn secret(dir: &Path, mode: u32) -> PathBuf {
        let p = dir.join(format!("secret-{mode:o}"));
        std::fs::write(&p, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn file(secret: &Path, extra: &str) -> String {
        format!(
            "[[trunk]]\nname = \"berlin\"\nme = \"{A}\"\npeer = \"{B}\"\nsecret_file = \"{}\"\nlocal_address = \"127.77.0.1\"\npeer_address = \"127.77.0.2\"\nrtp_ports = \"10000-10099\"\n{extra}",
            secret.display()
        )
    }

    #[test]
    fn a_listening_and_a_dialling_trunk() {
        let dir = tempfile::tempdir().unwrap();
        let s = secret(dir.path(), 0o600);
        let t = parse(&file(&s, "listen = \"127.0.0.1:7100\"\n"), Path::new("t.toml")).unwrap();
        assert_eq!(t.len(), 1);
        assert!(matches!(t[0].role, Role::Listen(a) if a.port() == 7100));
        assert_eq!((t[0].ports.sip.as_slice(), t[0].ports.rtp.clone()), (&[5060][..], 10000..=10099));
        let t = parse(
            &file(&s, &format!("dial = {{ carrier = \"socks5\", proxy = \"127.0.0.1:1080\", target = \"127.0.0.1:7100\", passcode_file = \"{}\" }}\n", s.display())),
            Path::new("t.toml"),
        )
        .unwrap();
        let Role::Dial(Carrier::Stream(StreamCarrier::Socks5 { auth: Some((u, _)), .. })) = &t[0].role else { panic!("{:?}", t[0].role) };
        assert_eq!(u.len(), 64);
        assert!(!format!("{:?}", t[0]).contains(u.as_str()), "the passcode must not be printed");
        let t = parse(&file(&s, "dial = { carrier = \"udp\", forward = \"127.0.0.1:7300\" }\n"), Path::new("t.toml")).unwrap();
        assert!(matches!(t[0].role, Role::Dial(Carrier::Udp { forward }) if forward.port() == 7300));
        let t = parse(&file(&s, "listen_udp = \"127.0.0.1:7301\"\n"), Path::new("t.toml")).unwrap();
        assert!(matches!(t[0].role, Role::ListenUdp(a) if a.port() == 7301));
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = secret(dir.path(), 0o600);
        let err = |extra: &str, s: &Path| parse(&file(s, extra), Path::new("t.toml")).unwrap_err().to_string();
        assert!(err("", &s).contains("exactly one of listen"));
        assert!(err("listen = \"127.0.0.1:1\"\ndial = { carrier = \"tcp\", addr = \"127.0.0.1:2\" }\n", &s).contains("exactly one"));
        assert!(err("listen = \"127.0.0.1:1\"\nlisten_udp = \"127.0.0.1:2\"\n", &s).contains("exactly one"));
        assert!(err("listen = \"127.0.0.1:1\"\nsip_ports = [10005]\n", &s).contains("outside rtp_ports"));
        assert!(err("listen = \"127.0.0.1:1\"\ncolour = 1\n", &s).contains("unknown field"));
        assert!(err("listen = \"127.0.0.1:1\"\n", &secret(dir.path(), 0o644)).contains("chmod 600"));
        let bad_key = file(&s, "listen = \"127.0.0.1:1\"\n").replace(A, "04ab");
        assert!(parse(&bad_key, Path::new("t.toml")).unwrap_err().to_string().contains("me: "));
        let twice = file(&s, "listen = \"127.0.0.1:1\"\n").repeat(2);
        assert!(parse(&twice, Path::new("t.toml")).unwrap_err().to_string().contains("used twice"));
    }
}
