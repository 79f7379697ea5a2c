//! The async emercoind client: one HTTP/1.1 keep-alive connection pool, one call per
//! request (no batching: batch replies mangle non-ASCII values), a hard deadline on
//! every call.
//!
//! The transport is hyper's pooled client without a higher layer: a cache miss in a
//! SIP worker is two or three of these calls, and a general-purpose HTTP client
//! (redirects, proxies, URL parsing per request) doubled their CPU cost. emercoind
//! speaks plain HTTP/1.1 only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::{Value, json};

use super::config::{Credentials, NodeConfig};
use super::error::{NvsError, rpc_code};
use super::types::{FilterEntry, HistoryEntry, NameEntry, NameValue, ValueType, type_name};
use super::wire::{Reply, decode_reply, encode_request};

/// A cheap-to-clone handle on one node (and optionally one wallet).
#[derive(Clone)]
pub struct NvsClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: Client<HttpConnector, Full<Bytes>>,
    endpoint: String,
    /// `endpoint`, parsed once.
    uri: hyper::Uri,
    credentials: Credentials,
    /// Cached Authorization header (re-read from the cookie file after a 401).
    auth: RwLock<Option<String>>,
    timeout: Duration,
    next_id: AtomicU64,
}

impl std::fmt::Debug for NvsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvsClient")
            .field("endpoint", &self.inner.endpoint)
            .field("credentials", &self.inner.credentials)
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

impl NvsClient {
    /// Build a client. Nothing is sent until the first call; creating a client in a
    /// process that will fork is harmless (no threads, no sockets yet).
    pub fn new(config: &NodeConfig) -> Result<Self, NvsError> {
        let endpoint = config.endpoint().map_err(|e| NvsError::Config(e.to_string()))?;
        let uri: hyper::Uri = endpoint
            .parse()
            .map_err(|e| NvsError::Config(format!("the node URL {endpoint} is not valid: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(NvsError::Config(format!(
                "the node URL {endpoint} must start with http:// (emercoind serves JSON-RPC over plain HTTP; \
                 reach a remote node through an SSH or WireGuard tunnel)"
            )));
        }
        let auth = match config.credentials.authorization() {
            Ok(a) => a,
            // A missing cookie is not fatal yet: the node may not have started. The
            // call will read it again and report a clear error.
            Err(_) if matches!(config.credentials, Credentials::CookieFile(_)) => None,
            Err(e) => return Err(NvsError::Config(e.to_string())),
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(16)
            .build(connector);
        Ok(NvsClient {
            inner: Arc::new(Inner {
                http,
                endpoint,
                uri,
                credentials: config.credentials.clone(),
                auth: RwLock::new(auth),
                timeout: config.timeout,
                next_id: AtomicU64::new(1),
            }),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Call any method; returns the `result` member.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, NvsError> {
        Ok(self.call_reply(method, &params).await?.result)
    }

    async fn call_reply(&self, method: &str, params: &[Value]) -> Result<Reply, NvsError> {
        let deadline = self.inner.timeout;
        let attempt = async {
            match self.send(method, params).await {
                // The node writes a new cookie each time it starts: re-read it once.
                Err(NvsError::Unauthorized) if self.refresh_cookie() => self.send(method, params).await,
                other => other,
            }
        };
        match tokio::time::timeout(deadline, attempt).await {
            Ok(r) => r,
            Err(_) => Err(NvsError::Timeout { method: method.to_owned(), timeout: deadline }),
        }
    }

    fn refresh_cookie(&self) -> bool {
        if !matches!(self.inner.credentials, Credentials::CookieFile(_)) {
            return false;
        }
        match self.inner.credentials.authorization() {
            Ok(fresh) => {
                let mut auth = self.inner.auth.write().unwrap_or_else(|p| p.into_inner());
                let changed = *auth != fresh;
                *auth = fresh;
                changed
            }
            Err(e) => {
                tracing::warn!("cannot re-read the node's cookie file: {e}");
                false
            }
        }
    }

    async fn send(&self, method: &str, params: &[Value]) -> Result<Reply, NvsError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let body = encode_request(id, method, params);
        let mut auth = self.inner.auth.read().unwrap_or_else(|p| p.into_inner()).clone();
        if auth.is_none()
            && let Credentials::CookieFile(path) = &self.inner.credentials {
                // Try once more now; the node may have started since.
                if !self.refresh_cookie() {
                    return Err(NvsError::Config(format!(
                        "no RPC password is configured and the node's cookie file {} cannot be read",
                        path.display()
                    )));
                }
                auth = self.inner.auth.read().unwrap_or_else(|p| p.into_inner()).clone();
            }
        let mut req = hyper::Request::post(self.inner.uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| NvsError::Config(format!("cannot build a request to {}: {e}", self.inner.endpoint)))?;
        if let Some(a) = auth {
            let mut value = HeaderValue::from_str(&a)
                .map_err(|_| NvsError::Config("the RPC credentials contain characters HTTP cannot carry".into()))?;
            value.set_sensitive(true);
            req.headers_mut().insert(AUTHORIZATION, value);
        }
        let resp = self.inner.http.request(req).await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.map_err(|e| self.unreachable(&e))?.to_bytes();
        decode_reply(method, status, &bytes)
    }

    /// A transport failure, with its causes ("connection refused", …) spelled out.
    fn unreachable(&self, e: &(dyn std::error::Error + 'static)) -> NvsError {
        NvsError::Unreachable { url: self.inner.endpoint.clone(), detail: crate::causes::spell_out(e) }
    }

    fn expect(method: &str, v: &Value, want: &str) -> NvsError {
        NvsError::Malformed {
            method: method.to_owned(),
            status: 200,
            detail: format!("expected {want}, got {}", type_name(v)),
        }
    }

    // ---- names -------------------------------------------------------------

    /// `name_show`, live names only: a missing (-4), deleted or expired name is
    /// `Ok(None)`.
    pub async fn name_show(&self, name: &str) -> Result<Option<NameEntry>, NvsError> {
        Ok(self.name_show_any(name).await?.filter(NameEntry::is_live))
    }

    /// `name_show` including deleted and expired names (flags set); `Ok(None)` only
    /// when the node has no record of the name (-4).
    pub async fn name_show_any(&self, name: &str) -> Result<Option<NameEntry>, NvsError> {
        const M: &str = "name_show";
        let reply = match self.call_reply(M, &[json!(name)]).await {
            Err(e) if e.rpc_code() == Some(rpc_code::WALLET_ERROR) => return Ok(None),
            other => other?,
        };
        if !reply.lossy {
            return NameEntry::from_json(M, &reply.result, ValueType::Raw).map(Some);
        }
        // The value is not UTF-8: ask again for it in base64 so no byte is lost.
        let again = match self.call_reply(M, &[json!(name), json!("base64")]).await {
            Err(e) if e.rpc_code() == Some(rpc_code::WALLET_ERROR) => return Ok(None),
            other => other?,
        };
        NameEntry::from_json(M, &again.result, ValueType::Base64).map(Some)
    }

    /// `name_filter regexp maxage from nb`: names whose name matches `regexp` (a
    /// regex *search*), expired ones included (flagged). This is a full scan on the
    /// node under its main lock: never call it on a call path.
    pub async fn name_filter(
        &self,
        regexp: &str,
        maxage: u64,
        from: u64,
        nb: u64,
    ) -> Result<Vec<FilterEntry>, NvsError> {
        const M: &str = "name_filter";
        let params = [json!(regexp), json!(maxage), json!(from), json!(nb)];
        let reply = self.call_reply(M, &params).await?;
        let (reply, vt) = if reply.lossy {
            let mut p = params.to_vec();
            p.extend([json!(""), json!("base64")]);
            (self.call_reply(M, &p).await?, ValueType::Base64)
        } else {
            (reply, ValueType::Raw)
        };
        Self::entries(M, &reply.result, vt)
    }

    /// `name_list [name]`: the names this wallet owns or has held.
    pub async fn name_list(&self, name: Option<&str>) -> Result<Vec<FilterEntry>, NvsError> {
        const M: &str = "name_list";
        let p = vec![json!(name.unwrap_or("")), json!("base64")];
        let reply = self.call_reply(M, &p).await?;
        Self::entries(M, &reply.result, ValueType::Base64)
    }

    fn entries(method: &str, v: &Value, vt: ValueType) -> Result<Vec<FilterEntry>, NvsError> {
        let arr = v.as_array().ok_or_else(|| Self::expect(method, v, "an array"))?;
        arr.iter().map(|e| FilterEntry::from_json(method, e, vt)).collect()
    }

    /// `name_history name [fullhistory]`, oldest first.
    pub async fn name_history(&self, name: &str, full: bool) -> Result<Vec<HistoryEntry>, NvsError> {
        const M: &str = "name_history";
        let reply = self.call_reply(M, &[json!(name), json!(full), json!("base64")]).await?;
        let arr = reply.result.as_array().ok_or_else(|| Self::expect(M, &reply.result, "an array"))?;
        arr.iter().map(|e| HistoryEntry::from_json(M, e, ValueType::Base64)).collect()
    }

    fn value_params(value: &NameValue) -> (Value, Option<&'static str>) {
        match value.as_str() {
            Some(s) => (json!(s), None),
            None => (json!(hex::encode(value.as_bytes())), Some("hex")),
        }
    }

    fn write_params(name: &str, value: &NameValue, days: i64, toaddress: Option<&str>) -> Vec<Value> {
        let (v, vt) = Self::value_params(value);
        let mut p = vec![json!(name), v, json!(days)];
        if toaddress.is_some() || vt.is_some() {
            p.push(json!(toaddress.unwrap_or("")));
        }
        if let Some(vt) = vt {
            p.push(json!(vt));
        }
        p
    }

    fn txid(method: &str, v: Value) -> Result<String, NvsError> {
        match v {
            Value::String(s) => Ok(s),
            other => Err(Self::expect(method, &other, "a txid string")),
        }
    }

    /// `name_new`: register a name for `days` days; returns the txid. The name is
    /// readable once the transaction is in a block.
    pub async fn name_new(
        &self,
        name: &str,
        value: &NameValue,
        days: i64,
        toaddress: Option<&str>,
    ) -> Result<String, NvsError> {
        let p = Self::write_params(name, value, days, toaddress);
        Self::txid("name_new", self.call("name_new", p).await?)
    }

    /// `name_update`: new value, `days` more days (0 keeps the expiry). Without
    /// `toaddress` the node moves the name to a fresh key of its wallet.
    pub async fn name_update(
        &self,
        name: &str,
        value: &NameValue,
        days: i64,
        toaddress: Option<&str>,
    ) -> Result<String, NvsError> {
        let p = Self::write_params(name, value, days, toaddress);
        Self::txid("name_update", self.call("name_update", p).await?)
    }

    pub async fn name_delete(&self, name: &str) -> Result<String, NvsError> {
        Self::txid("name_delete", self.call("name_delete", vec![json!(name)]).await?)
    }

    // ---- chain and wallet -------------------------------------------------

    pub async fn get_block_count(&self) -> Result<u64, NvsError> {
        let v = self.call("getblockcount", vec![]).await?;
        v.as_u64().ok_or_else(|| Self::expect("getblockcount", &v, "a block height"))
    }

    /// `getblockchaininfo` (safe on any node, unlike `getinfo`).
    pub async fn get_blockchain_info(&self) -> Result<Value, NvsError> {
        let v = self.call("getblockchaininfo", vec![]).await?;
        if v.is_object() { Ok(v) } else { Err(Self::expect("getblockchaininfo", &v, "an object")) }
    }

    pub async fn get_new_address(&self, legacy: bool) -> Result<String, NvsError> {
        let p = if legacy { vec![json!(""), json!("legacy")] } else { vec![] };
        let v = self.call("getnewaddress", p).await?;
        match v {
            Value::String(s) => Ok(s),
            other => Err(Self::expect("getnewaddress", &other, "an address string")),
        }
    }

    /// `signmessage address message`: base64 signature by a key of this wallet.
    pub async fn sign_message(&self, address: &str, message: &str) -> Result<String, NvsError> {
        let v = self.call("signmessage", vec![json!(address), json!(message)]).await?;
        match v {
            Value::String(s) => Ok(s),
            other => Err(Self::expect("signmessage", &other, "a signature string")),
        }
    }

    pub async fn verify_message(&self, address: &str, signature: &str, message: &str) -> Result<bool, NvsError> {
        let v = self.call("verifymessage", vec![json!(address), json!(signature), json!(message)]).await?;
        v.as_bool().ok_or_else(|| Self::expect("verifymessage", &v, "a boolean"))
    }
}
