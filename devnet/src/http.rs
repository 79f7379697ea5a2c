//! The devnet's HTTP face, shaped like emercoind's (docs/emercoin.md §1.1, §1.3):
//! POST only (405 with a plain-text body otherwise), HTTP basic auth (401 with an
//! empty body and `WWW-Authenticate`, 250 ms delay on a wrong password), `/` and
//! `/wallet/<name>`, JSON-RPC 1.0 replies with `result`, `error`, `id` and a final
//! newline, HTTP status from the error code, batches answered with legacy escaping.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::rpc::{Fault, Node, RpcError, WalletPath};
use crate::univalue::{self, Uv};

/// Largest request body accepted.
const MAX_BODY: usize = 4 * 1024 * 1024;

pub struct Shared {
    pub node: Mutex<Node>,
    /// Expected `Authorization` header value.
    pub authorization: String,
    pub state_file: Option<PathBuf>,
}

impl Shared {
    fn save_if_dirty(&self) {
        let Some(path) = &self.state_file else { return };
        let json = {
            let mut node = self.node.lock().unwrap_or_else(|p| p.into_inner());
            if !node.dirty {
                return;
            }
            node.dirty = false;
            serde_json::to_vec_pretty(&node.state)
        };
        match json {
            Ok(bytes) => {
                if let Err(e) = crate::state::write_atomically(path, &bytes) {
                    tracing::error!("cannot save devnet state to {}: {e}", path.display());
                }
            }
            Err(e) => tracing::error!("cannot serialise devnet state: {e}"),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert("Content-Type", "text/html; charset=ISO-8859-1".parse().expect("static header"));
    r
}

fn json(status: u16, mut body: Vec<u8>) -> Response<Full<Bytes>> {
    body.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert("Content-Type", "application/json".parse().expect("static header"));
    r
}

fn reply_obj(result: Uv, error: Option<&RpcError>, id: Uv) -> Uv {
    let error = match error {
        Some(e) => Uv::obj(vec![("code", Uv::int(e.code)), ("message", Uv::str(&e.message))]),
        None => Uv::Null,
    };
    Uv::obj(vec![("result", result), ("error", error), ("id", id)])
}

/// Why a request gets no HTTP reply at all.
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection dropped without a reply (emulated node crash)")
    }
}

impl std::error::Error for Dropped {}

/// One JSON-RPC request object → its reply object and HTTP status.
fn handle_one(node: &mut Node, path: &WalletPath, req: &Uv) -> Result<(Uv, u16), Dropped> {
    let id = req.get("id").cloned().unwrap_or(Uv::Null);
    let method = match req.get("method") {
        Some(Uv::Str(m)) => String::from_utf8_lossy(m).into_owned(),
        Some(_) => {
            let e = RpcError::new(-32600, "Method must be a string");
            return Ok((reply_obj(Uv::Null, Some(&e), id), 400));
        }
        None => {
            let e = RpcError::new(-32600, "Missing method");
            return Ok((reply_obj(Uv::Null, Some(&e), id), 400));
        }
    };
    let params = match req.get("params") {
        None | Some(Uv::Null) => Vec::new(),
        Some(Uv::Arr(a)) => a.clone(),
        Some(_) => {
            let e = RpcError::new(-32600, "Params must be an array (the devnet has no named parameters)");
            return Ok((reply_obj(Uv::Null, Some(&e), id), 400));
        }
    };
    match node.call(path, &method, &params) {
        Ok(result) => Ok((reply_obj(result, None, id), 200)),
        Err(Some(e)) => {
            let status = e.http_status();
            Ok((reply_obj(Uv::Null, Some(&e), id), status))
        }
        Err(None) => Err(Dropped),
    }
}

fn wallet_path(path: &str) -> Option<WalletPath> {
    if path == "/" {
        return Some(WalletPath::Root);
    }
    let name = path.strip_prefix("/wallet/")?;
    let mut out = Vec::new();
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).ok()?, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        out.push(b[i]);
        i += 1;
    }
    Some(WalletPath::Named(String::from_utf8_lossy(&out).into_owned()))
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    if req.method() != Method::POST {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "JSONRPC server handles only POST requests"));
    }
    let unauthorized = || {
        let mut r = text(StatusCode::UNAUTHORIZED, "");
        r.headers_mut().insert("WWW-Authenticate", "Basic realm=\"jsonrpc\"".parse().expect("static header"));
        r
    };
    match req.headers().get("Authorization") {
        None => return Ok(unauthorized()),
        Some(v) if v.as_bytes() != shared.authorization.as_bytes() => {
            tokio::time::sleep(Duration::from_millis(250)).await;
            return Ok(unauthorized());
        }
        Some(_) => {}
    }
    let Some(path) = wallet_path(req.uri().path()) else {
        let mut r = text(StatusCode::NOT_FOUND, "");
        r.headers_mut().remove("Content-Type");
        return Ok(r);
    };
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, "")),
    };
    let parse_error = |message: &str| {
        let e = RpcError::new(-32700, message);
        json(500, reply_obj(Uv::Null, Some(&e), Uv::Null).to_bytes())
    };
    let parsed = univalue::parse(&body);
    // devnet_fault always gets through, so a test can clear the fault it set.
    let control = matches!(&parsed, Ok(r) if r.get("method") == Some(&Uv::str("devnet_fault")));
    let fault = shared.node.lock().unwrap_or_else(|p| p.into_inner()).fault.clone();
    if !control {
        match fault {
            Fault::Busy => return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "Work queue depth exceeded")),
            Fault::Hang => std::future::pending::<()>().await,
            Fault::Garbage => return Ok(text(StatusCode::OK, "<html><body>Welcome to nginx!</body></html>")),
            Fault::Drop => return Err(Dropped),
            Fault::None | Fault::Warmup(_) => {}
        }
    }
    let Ok(request) = parsed else { return Ok(parse_error("Parse error")) };
    let response = {
        let mut node = shared.node.lock().unwrap_or_else(|p| p.into_inner());
        match &request {
            Uv::Obj(_) => {
                let (reply, status) = handle_one(&mut node, &path, &request)?;
                json(status, reply.to_bytes())
            }
            Uv::Arr(items) => {
                let mut replies = Vec::new();
                for item in items {
                    let reply = match item {
                        Uv::Obj(_) => handle_one(&mut node, &path, item)?.0,
                        _ => reply_obj(Uv::Null, Some(&RpcError::new(-32600, "Invalid Request object")), Uv::Null),
                    };
                    replies.push(reply);
                }
                let mut out = Vec::new();
                Uv::Arr(replies).write(&mut out, true);
                json(200, out)
            }
            _ => parse_error("Top-level object parse error"),
        }
    };
    shared.save_if_dirty();
    Ok(response)
}

/// Serve until `shutdown` turns true. Connections still open then are cut.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    shared.save_if_dirty();
}
