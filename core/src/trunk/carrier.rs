//! Stream carriers: how one relay reaches its peer relay (docs/skywire.md §2).
//!
//! - `Socks5`: SOCKS5 CONNECT through the local skysocks-client. The target is
//!   resolved on the *peer's* host (so `127.0.0.1:7100` is the peer relay on
//!   its own loopback); a skysocks server protected by a passcode takes it as
//!   RFC 1929 username/password. hyper-util's SOCKSv5 connector speaks it.
//! - `Tcp`: plain TCP to a local forward port (a skynet raw-TCP forward on
//!   Skywire v1.3.34 and later, or any other stream tunnel).
//!
//! - `Udp` ([`Carrier::Udp`]): datagrams to a local faithful-UDP forward; its
//!   handshake and frames live in datagram.rs.
//!
//! Every connect has a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::SocksV5;
use tokio::net::TcpStream;
use tower_service::Service;

/// Where a stream carrier goes.
#[derive(Clone, PartialEq, Eq)]
pub enum StreamCarrier {
    Socks5 {
        /// The local SOCKS5 client (skysocks-client), e.g. `127.0.0.1:1080`.
        proxy: SocketAddr,
        /// The peer relay as its host sees it, `host:port`.
        target: String,
        /// The skysocks server's passcode as RFC 1929 username and password.
        auth: Option<(String, String)>,
    },
    Tcp {
        addr: SocketAddr,
    },
}

impl std::fmt::Debug for StreamCarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamCarrier::Socks5 { proxy, target, auth } => {
                write!(f, "socks5 via {proxy} to {target}{}", if auth.is_some() { " (with passcode)" } else { "" })
            }
            StreamCarrier::Tcp { addr } => write!(f, "tcp to {addr}"),
        }
    }
}

/// How a dialling relay reaches its peer relay.
#[derive(Clone, PartialEq, Eq)]
pub enum Carrier {
    /// A byte stream (SOCKS5 CONNECT or a TCP forward); frames are length-prefixed.
    Stream(StreamCarrier),
    /// A faithful-UDP forward listening on `forward`; one frame per datagram.
    Udp { forward: SocketAddr },
}

impl std::fmt::Debug for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Carrier::Stream(s) => s.fmt(f),
            Carrier::Udp { forward } => write!(f, "udp to {forward}"),
        }
    }
}

/// Why a carrier could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CarrierError {
    #[error("{carrier:?}: no connection within {limit:?}")]
    Timeout { carrier: StreamCarrier, limit: Duration },
    #[error("{carrier:?}: {detail}")]
    Connect { carrier: StreamCarrier, detail: String },
}

impl StreamCarrier {
    /// Open the carrier: a byte stream to the peer relay.
    pub async fn connect(&self, limit: Duration) -> Result<TcpStream, CarrierError> {
        let fail = |detail: String| CarrierError::Connect { carrier: self.clone(), detail };
        let attempt = async {
            match self {
                StreamCarrier::Tcp { addr } => TcpStream::connect(addr).await.map_err(|e| fail(e.to_string())),
                StreamCarrier::Socks5 { proxy, target, auth } => {
                    let mut http = HttpConnector::new();
                    http.enforce_http(false);
                    http.set_nodelay(true);
                    let proxy_uri: hyper::Uri = format!("socks5://{proxy}").parse().map_err(|e| fail(format!("{e}")))?;
                    // The peer host resolves the target (socks5h semantics).
                    let mut socks = SocksV5::new(proxy_uri, http).local_dns(false);
                    if let Some((user, pass)) = auth {
                        socks = socks.with_auth(user.clone(), pass.clone());
                    }
                    let target_uri: hyper::Uri = format!("http://{target}").parse().map_err(|e| fail(format!("target {target:?}: {e}")))?;
                    let io = socks.call(target_uri).await.map_err(|e| fail(crate::causes::spell_out(&e)))?;
                    Ok(io.into_inner())
                }
            }
        };
        let stream = tokio::time::timeout(limit, attempt).await.map_err(|_| CarrierError::Timeout { carrier: self.clone(), limit })??;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}
