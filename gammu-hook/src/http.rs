//! The forwarder's HTTP/1.1 client: hyper's pooled client, direct or through a
//! SOCKS5 proxy (hyper-util's SOCKSv5 connector; `socks5h://` lets the proxy
//! resolve names, as skysocks-client needs; `user:password@` is RFC 1929 auth).
//! Plain `http://` only: the envelopes are sealed and signed end to end, and a
//! Skywire route is encrypted; put a TLS proxy in front for anything else.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::SocksV5;
use hyper_util::rt::{TokioExecutor, TokioTimer};

#[derive(Clone)]
pub enum Sender {
    Direct(Client<HttpConnector, Full<Bytes>>),
    Socks(Client<SocksV5<HttpConnector>, Full<Bytes>>),
}

impl Sender {
    /// A client, through `proxy` (`socks5://` or `socks5h://host:port`) if given.
    pub fn new(proxy: Option<&str>, timeout: Duration, pool: usize) -> Result<Sender, String> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let builder = || {
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_timer(TokioTimer::new()).pool_idle_timeout(Duration::from_secs(30)).pool_max_idle_per_host(pool);
            b
        };
        let Some(proxy) = proxy else {
            return Ok(Sender::Direct(builder().build(connector)));
        };
        let uri: hyper::Uri = proxy.parse().map_err(|e| format!("the proxy {proxy:?} is not a URL: {e}"))?;
        let local_dns = match uri.scheme_str() {
            Some("socks5") => true,
            Some("socks5h") => false,
            _ => return Err(format!("the proxy {proxy:?} must be socks5:// or socks5h://")),
        };
        // The connector dials the proxy, whose URL is not http://.
        connector.enforce_http(false);
        let auth = uri.authority().and_then(|a| a.as_str().rsplit_once('@')).map(|(cred, _)| cred.to_owned());
        let host_port = uri.authority().map(|a| a.as_str().rsplit('@').next().unwrap_or("").to_owned()).unwrap_or_default();
        let bare: hyper::Uri = format!("{}://{host_port}", uri.scheme_str().unwrap_or("socks5"))
            .parse()
            .map_err(|e| format!("the proxy {proxy:?}: {e}"))?;
        let mut socks = SocksV5::new(bare, connector).local_dns(local_dns);
        if let Some(cred) = auth {
            let (user, pass) = cred.split_once(':').unwrap_or((&cred, ""));
            socks = socks.with_auth(user.to_owned(), pass.to_owned());
        }
        Ok(Sender::Socks(builder().build(socks)))
    }

    /// POST a JSON body; the status and the whole answer, within `timeout`.
    pub async fn post_json(&self, url: &str, body: Vec<u8>, timeout: Duration) -> Result<(u16, Bytes), String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let req = hyper::Request::post(uri)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{url}: {e}"))?;
        let exchange = async {
            let resp = match self {
                Sender::Direct(c) => c.request(req).await,
                Sender::Socks(c) => c.request(req).await,
            }
            .map_err(|e| ness_core::causes::spell_out(&e))?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.map_err(|e| ness_core::causes::spell_out(&e))?.to_bytes();
            Ok((status, bytes))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r.map_err(|e: String| format!("{url}: {e}")),
            Err(_) => Err(format!("{url}: no answer within {} ms", timeout.as_millis())),
        }
    }
}
