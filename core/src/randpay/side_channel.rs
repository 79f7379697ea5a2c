//! The HTTP side channel of docs/randpay.md §2, for trunks where one PBX cannot
//! carry the challenge and ticket in SIP (Asterisk): the payee serves
//! `GET /randpay/<call-id>/challenge[?number=+E164]` and
//! `POST /randpay/<call-id>/ticket`, answering only its trunk peers; the payer
//! uses [`SideChannel`]. Call-IDs are percent-encoded in the path.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::chap::ChallengeHeader;
use super::meter::TicketVerdict;
use crate::nvs::config::percent_encode_path as percent_encode;
use super::session::{InviteDecision, Payee, Payer, Pending, TicketError};

/// Largest request body (a ticket header value).
const BODY_LIMIT: usize = 256 * 1024;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// `%XX` decoding of one path segment.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}


async fn handle(payee: Arc<Payee>, req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (call_id, what) = match parts.as_slice() {
        ["randpay", id, what] if !id.is_empty() => match percent_decode(id) {
            Some(id) if id.len() <= 256 => (id, *what),
            _ => return Ok(reply(StatusCode::BAD_REQUEST, "bad Call-ID\n")),
        },
        _ => return Ok(reply(StatusCode::NOT_FOUND, "use /randpay/<call-id>/challenge or /ticket\n")),
    };
    Ok(match (req.method(), what) {
        (&Method::GET, "challenge") => match payee.pending(&call_id) {
            Pending::Challenge(h) => reply(StatusCode::OK, h),
            Pending::Nothing => reply(StatusCode::NO_CONTENT, ""),
            Pending::UnknownCall => {
                let number = query.split('&').find_map(|kv| kv.strip_prefix("number=")).and_then(percent_decode);
                match number {
                    None => reply(StatusCode::NOT_FOUND, "no such call (give ?number= to start one)\n"),
                    Some(n) => match payee.invite_on_side_channel(&call_id, &n).await {
                        InviteDecision::Challenge(h) => reply(StatusCode::OK, h),
                        InviteDecision::Proceed => reply(StatusCode::NO_CONTENT, ""),
                        InviteDecision::Refuse(code, why) => reply(
                            StatusCode::from_u16(if code == 403 { 403 } else { 503 }).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                            format!("{why}\n"),
                        ),
                    },
                }
            }
        },
        (&Method::POST, "ticket") => {
            let body = match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, "ticket too large\n")),
            };
            let text = String::from_utf8_lossy(&body);
            match payee.ticket(&call_id, text.trim()).await {
                Ok(TicketVerdict::Paid | TicketVerdict::Duplicate) => reply(StatusCode::OK, "paid\n"),
                Ok(v) => reply(StatusCode::CONFLICT, format!("not counted: {v:?}\n")),
                Err(TicketError::NoCall) => reply(StatusCode::NOT_FOUND, "no such call\n"),
                Err(TicketError::Node(e)) => reply(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
                Err(e) => reply(StatusCode::CONFLICT, format!("{e}\n")),
            }
        }
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, "GET …/challenge or POST …/ticket\n"),
    })
}

/// Serve the side channel until `shutdown` turns true. Only `peers` may ask
/// (empty: anyone who can reach the listener).
pub async fn serve(listener: TcpListener, payee: Arc<Payee>, peers: Vec<IpAddr>, mut shutdown: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                if !peers.is_empty() && !peers.contains(&peer.ip()) {
                    tracing::warn!("randpay side channel: refused {peer} (not a trunk peer)");
                    continue;
                }
                let payee = payee.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(payee.clone(), req));
                    let _ = tokio::time::timeout(
                        Duration::from_secs(30),
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                    )
                    .await;
                });
            }
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

/// Why a side-channel request failed.
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    #[error("the payee's side channel at {0} did not answer in time")]
    Timeout(String),
    #[error("the payee's side channel at {url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("the payee answered {status}: {body}")]
    Refused { status: u16, body: String },
}

/// The payer's client for a payee's side channel.
#[derive(Clone)]
pub struct SideChannel {
    base: String,
    timeout: Duration,
    client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl SideChannel {
    /// `base` like `http://10.0.0.2:8481` (the payee's trunk address).
    pub fn new(base: &str, timeout: Duration) -> SideChannel {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        SideChannel { base: base.trim_end_matches('/').to_owned(), timeout, client }
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<(u16, String), SideError> {
        let url = req.uri().to_string();
        let fut = async {
            let resp = self.client.request(req).await.map_err(|e| SideError::Transport { url: url.clone(), detail: e.to_string() })?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), BODY_LIMIT)
                .collect()
                .await
                .map_err(|e| SideError::Transport { url: url.clone(), detail: e.to_string() })?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).trim().to_owned()))
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| SideError::Timeout(url.clone()))?
    }

    /// The challenge to pay now (`None`: nothing due). `number` starts the call's
    /// record on the payee (before the INVITE).
    pub async fn challenge(&self, call_id: &str, number: Option<&str>) -> Result<Option<String>, SideError> {
        let mut uri = format!("{}/randpay/{}/challenge", self.base, percent_encode(call_id));
        if let Some(n) = number {
            uri.push_str(&format!("?number={}", percent_encode(n)));
        }
        let req = Request::get(uri).body(Full::new(Bytes::new())).map_err(|e| SideError::Transport { url: self.base.clone(), detail: e.to_string() })?;
        match self.send(req).await? {
            (200, body) => Ok(Some(body)),
            (204, _) => Ok(None),
            (status, body) => Err(SideError::Refused { status, body }),
        }
    }

    /// Hand over a ticket (the `Randpay-Ticket` value).
    pub async fn ticket(&self, call_id: &str, header: &str) -> Result<(), SideError> {
        let uri = format!("{}/randpay/{}/ticket", self.base, percent_encode(call_id));
        let req = Request::post(uri)
            .body(Full::new(Bytes::from(header.to_owned())))
            .map_err(|e| SideError::Transport { url: self.base.clone(), detail: e.to_string() })?;
        match self.send(req).await? {
            (200, _) => Ok(()),
            (status, body) => Err(SideError::Refused { status, body }),
        }
    }
}

/// Parse the payee's listen address (`IP:port`) and the peers allowed to use it
/// (`IP,IP`; empty: anyone). The Kamailio modparams `randpay_side_channel` and
/// `randpay_side_peers`, Asterisk's `side_channel` and `side_peers`.
pub fn listen_setting(listen: &str, peers: &str) -> Result<(SocketAddr, Vec<IpAddr>), String> {
    let addr = listen.trim().parse().map_err(|_| format!("side channel: {listen:?} is not IP:port"))?;
    let peers = peers
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map_err(|_| format!("side channel peers: {p:?} is not an IP address")))
        .collect::<Result<Vec<IpAddr>, String>>()?;
    Ok((addr, peers))
}

/// How often a payer asks for the next challenge: three times within the window
/// between its issue (a quarter interval before the paid time ends) and the
/// deadline (grace after it), 1 to 10 s.
pub fn poll_period(interval_secs: u32, grace_secs: u32) -> Duration {
    Duration::from_secs(u64::from((interval_secs / 4 + grace_secs) / 3).clamp(1, 10))
}

/// What one payer poll of the side channel came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    /// Nothing due.
    Nothing,
    /// A ticket was paid and taken; ask again after this period.
    Paid(Duration),
    /// Not paid this time (logged); ask again later.
    Failed(String),
    /// The payee no longer meters the call (it ended it): stop asking.
    Forgotten(String),
}

/// Ask the payee for the call's next challenge and pay it if one is due (the
/// payer's side of §2, after the first interval).
pub async fn pay_next(payer: &Payer, side: &SideChannel, call_id: &str, number: &str) -> Poll {
    let challenge = match side.challenge(call_id, None).await {
        Ok(None) => return Poll::Nothing,
        Ok(Some(c)) => c,
        Err(SideError::Refused { status: 404, body }) => return Poll::Forgotten(body),
        Err(e) => return Poll::Failed(e.to_string()),
    };
    let period = ChallengeHeader::parse(&challenge).map(|h| poll_period(h.interval_secs, h.grace_secs)).unwrap_or(Duration::from_secs(1));
    let ticket = match payer.pay(call_id, number, &challenge).await {
        Ok(t) => t,
        Err(e) => return Poll::Failed(format!("not paying: {e}")),
    };
    match side.ticket(call_id, &ticket).await {
        Ok(()) => Poll::Paid(period),
        Err(e) => Poll::Failed(format!("the ticket was not taken: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_poll_period() {
        let (a, p) = listen_setting(" 127.0.0.1:8481 ", "10.0.0.1, ::1").unwrap();
        assert_eq!(a.port(), 8481);
        assert_eq!(p.len(), 2);
        assert!(listen_setting("127.0.0.1", "").is_err());
        assert!(listen_setting("127.0.0.1:1", "10.0.0.x").is_err());
        assert!(listen_setting("127.0.0.1:1", "").unwrap().1.is_empty());
        // T=10, G=3: the window is 2.5 + 3 s, so every second.
        assert_eq!(poll_period(10, 3), Duration::from_secs(1));
        assert_eq!(poll_period(60, 10), Duration::from_secs(8));
        assert_eq!(poll_period(3600, 60), Duration::from_secs(10));
    }

    #[test]
    fn call_ids_survive_the_path() {
        for id in ["a84b4c76e66710@pc33.example.com", "1-2/3?x=y z%", "\u{e9}t\u{e9}"] {
            assert_eq!(percent_decode(&percent_encode(id)).as_deref(), Some(id));
        }
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
