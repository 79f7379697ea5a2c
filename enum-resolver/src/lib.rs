//! ness-enum-resolver: ENUM over Emercoin NVS for clients that speak HTTP or DNS.
//!
//! One resolver (ness-core's, with its cache and trust rules) behind two faces:
//! - an HTTP API compatible with the privatenumer backend ([`http`]), plus
//!   `/metrics` ([`metrics`]);
//! - a DNS server answering NAPTR for `e164.arpa.` and `enum.` ([`dns`]).
//!
//! [`start`] runs both on the current tokio runtime; `main.rs` adds the command
//! line, the configuration file ([`config`]) and the `--devnet` demo mode.

pub mod config;
pub mod dns;
pub mod http;
pub mod json;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ness_core::enumer::Resolver;
use ness_core::nvs::{NodeConfig, NvsClient};
use tokio::sync::watch;

/// A running resolver.
pub struct Running {
    pub http_addr: Option<SocketAddr>,
    /// Bound DNS addresses (UDP and TCP on each).
    pub dns_addrs: Vec<SocketAddr>,
    pub resolver: Arc<Resolver<NvsClient>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    udp_stop: Arc<std::sync::atomic::AtomicBool>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stop serving and wait for the servers to finish.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.udp_stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let threads = self.udp_threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot create the node client: {0}")]
    Node(#[from] ness_core::nvs::NvsError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind { addr: SocketAddr, what: &'static str, source: std::io::Error },
    #[error(transparent)]
    Zone(#[from] dns::ZoneError),
}

/// Resolves once shutdown has been asked for.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Start the HTTP and DNS servers described by `config`, reading names from `node`.
pub async fn start(config: &config::Config, node: NodeConfig) -> Result<Running, StartError> {
    config.validate()?;
    let token = config.register_token()?;
    let client = NvsClient::new(&node)?;
    let resolver = Arc::new(Resolver::new(client.clone(), config.resolver_config()));
    let metrics = Arc::new(metrics::Metrics::new(resolver.clone()));
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = Vec::new();

    let mut http_addr = None;
    if let Some(addr) = config.http.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, what: "HTTP", source })?;
        http_addr = Some(listener.local_addr().map_err(|source| StartError::Bind { addr, what: "HTTP", source })?);
        let app = Arc::new(http::App::new(
            resolver.clone(),
            client.clone(),
            metrics.clone(),
            token,
            config.http.cors_origins.clone(),
            Duration::from_secs(config.http.list_cache_secs),
        ));
        let mut rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move { stopped(&mut rx).await };
            if let Err(e) = axum::serve(listener, http::router(app)).with_graceful_shutdown(stop).await {
                tracing::error!("HTTP server stopped: {e}");
            }
        }));
    }

    let mut dns_addrs = Vec::new();
    let udp_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut udp_threads = Vec::new();
    if !config.dns.listen.is_empty() {
        let handler = Arc::new(dns::EnumDns::new(resolver.clone(), &config.dns.zones, metrics.clone())?);
        let mut server = hickory_server::Server::new(SharedHandler(handler.clone()));
        let mut udp_sockets = Vec::new();
        for &want in &config.dns.listen {
            let tcp = tokio::net::TcpListener::bind(want)
                .await
                .map_err(|source| StartError::Bind { addr: want, what: "DNS/TCP", source })?;
            let addr = tcp.local_addr().map_err(|source| StartError::Bind { addr: want, what: "DNS/TCP", source })?;
            udp_sockets.extend(
                dns::udp::bind(addr, config.dns.udp_sockets)
                    .map_err(|source| StartError::Bind { addr, what: "DNS/UDP", source })?,
            );
            server.register_listener(tcp, Duration::from_secs(config.dns.tcp_timeout_secs.max(1)), 64);
            dns_addrs.push(addr);
        }
        udp_threads = dns::udp::serve(udp_sockets, handler, tokio::runtime::Handle::current(), udp_stop.clone())
            .map_err(|source| StartError::Bind { addr: dns_addrs[0], what: "DNS/UDP threads", source })?;
        let mut rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                r = server.block_until_done() => if let Err(e) = r { tracing::error!("DNS server stopped: {e}") },
                _ = stopped(&mut rx) => {
                    let _ = server.shutdown_gracefully().await;
                }
            }
        }));
    }
    Ok(Running { http_addr, dns_addrs, resolver, shutdown, tasks, udp_stop, udp_threads })
}

/// hickory-server owns its handler; ours is shared with the UDP front.
struct SharedHandler<S>(Arc<dns::EnumDns<S>>);

#[async_trait::async_trait]
impl<S: ness_core::enumer::NameSource + 'static> hickory_server::server::RequestHandler for SharedHandler<S> {
    async fn handle_request<R: hickory_server::server::ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &hickory_server::server::Request,
        response_handle: R,
    ) -> hickory_server::server::ResponseInfo {
        self.0.handle_request::<R, T>(request, response_handle).await
    }
}
