//! The HTTP API, compatible with the privatenumer backend's routes and JSON
//! (docs/privatenumer-compat.md Part A) without its bugs (Part E2): node failures
//! are told apart (404 not found, 503 node unreachable, 502 garbage from the node),
//! expired and untrusted records do not resolve, registration needs a token, every
//! reply — errors included — is JSON, and numbers are logged at debug level only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use ness_core::enumer::{
    AnswerSource, E164, EnumAnswer, Naptr, NaptrRegexp, ResolveError, Resolver, naptr::sort_naptrs, parse_enumer_name,
    parse_enumer_value, parse_privatenumer_name, privatenumer::parse_privatenumer_value,
};
use ness_core::enumer::registry::{self, RegistryError};
use ness_core::nvs::{NvsClient, NvsError};
use serde_json::{Value, json};

use crate::json::to_flask_bytes;
use crate::metrics::{HttpLabels, Metrics};

pub struct App {
    pub resolver: Arc<Resolver<NvsClient>>,
    /// Client for node calls other than lookups (health, list, register).
    pub node: NvsClient,
    pub metrics: Arc<Metrics>,
    pub register_token: Option<String>,
    pub cors_origins: Vec<String>,
    pub list_cache: Duration,
    listing: tokio::sync::Mutex<Option<(Instant, Arc<Vec<Listed>>)>>,
    /// Rendered /enum/lookup replies of cache hits, reused while the resolver
    /// returns the same answer (keyed by service and the number as given).
    replies: std::sync::Mutex<lru::LruCache<String, (Arc<EnumAnswer>, Bytes)>>,
}

impl App {
    pub fn new(
        resolver: Arc<Resolver<NvsClient>>,
        node: NvsClient,
        metrics: Arc<Metrics>,
        register_token: Option<String>,
        cors_origins: Vec<String>,
        list_cache: Duration,
    ) -> Self {
        App {
            resolver,
            node,
            metrics,
            register_token,
            cors_origins,
            list_cache,
            listing: Default::default(),
            replies: std::sync::Mutex::new(lru::LruCache::new(std::num::NonZeroUsize::new(10_000).expect("non-zero"))),
        }
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/enum/lookup", get(lookup))
        .route("/enum/list", get(list))
        .route("/enum/register", post(register))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), cors_and_count))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            tracing::error!("an HTTP handler panicked; answered 500");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error (logged)")
        }))
        .with_state(app)
}

/// Largest `/enum/register` body accepted.
const MAX_REGISTER_BODY: usize = 64 * 1024;

fn reply(status: StatusCode, v: Value) -> Response {
    reply_bytes(status, Bytes::from(to_flask_bytes(&v)))
}

fn reply_bytes(status: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    reply(status, json!({ "error": message.into() }))
}

async fn not_found(uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("Not Found: {}", uri.path()))
}

async fn method_not_allowed(method: Method) -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, format!("Method Not Allowed: {method}"))
}

/// flask-cors behaviour, in this one layer only (privatenumer bug E2/15): no
/// Origin → `*` when any origin is allowed; an allowed Origin is echoed with
/// `Vary: Origin`; OPTIONS is answered here with the allowed methods and headers.
async fn cors_and_count(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let route = route_label(req.uri().path());
    let any = app.cors_origins.iter().any(|o| o == "*");
    let allowed_origin = origin.as_ref().filter(|o| {
        any || o.to_str().is_ok_and(|o| app.cors_origins.iter().any(|a| a == o))
    });
    let mut resp = if req.method() == Method::OPTIONS {
        let mut r = Response::new(Body::empty());
        let allow = if route == "/enum/register" { "OPTIONS, POST" } else { "GET, HEAD, OPTIONS" };
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        r.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"),
        );
        if let Some(h) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
        r
    } else {
        next.run(req).await
    };
    match (allowed_origin, any) {
        (Some(o), _) => {
            resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
            resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        (None, true) if origin.is_none() => {
            resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
        _ => {}
    }
    app.metrics.http_requests.get_or_create(&HttpLabels { route, status: resp.status().as_u16() }).inc();
    resp
}

fn route_label(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/enum/lookup" => "/enum/lookup",
        "/enum/list" => "/enum/list",
        "/enum/register" => "/enum/register",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

fn node_error_status(e: &NvsError) -> StatusCode {
    match e {
        NvsError::Malformed { .. } => StatusCode::BAD_GATEWAY,
        NvsError::Rpc { .. } => StatusCode::BAD_GATEWAY,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn query_param(uri: &Uri, key: &str) -> Option<String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

// ---- /health ---------------------------------------------------------------

async fn health(State(app): State<Arc<App>>) -> Response {
    let (chain, net) = tokio::join!(app.node.get_blockchain_info(), app.node.call("getnetworkinfo", vec![]));
    match chain {
        Ok(info) => {
            let ibd = info.get("initialblockdownload").and_then(Value::as_bool).unwrap_or(false);
            let version = net.ok().and_then(|n| n.get("version").cloned()).unwrap_or_else(|| json!("unknown"));
            let body = json!({
                "blocks": info.get("blocks").cloned().unwrap_or(json!(0)),
                "chain": info.get("chain").cloned().unwrap_or(json!("unknown")),
                "emercoin_connected": true,
                "initial_block_download": ibd,
                "status": if ibd { "syncing" } else { "healthy" },
                "version": version,
            });
            reply(if ibd { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }, body)
        }
        Err(e) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"emercoin_connected": false, "error": e.to_string(), "status": "degraded"}),
        ),
    }
}

// ---- /metrics --------------------------------------------------------------

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut r = Response::new(Body::from(app.metrics.encode()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

// ---- /enum/lookup ----------------------------------------------------------

fn naptr_json(n: &Naptr) -> Value {
    let pattern = n.regexp.pattern().to_owned();
    json!({
        "flags": n.flags,
        "order": n.order,
        "pattern": pattern,
        "preference": n.preference,
        "regexp": n.regexp.as_str(),
        "replacement": n.regexp.replacement_text(),
        "service": n.service,
        "uri": n.uri,
    })
}

async fn lookup(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let raw = query_param(&uri, "number").unwrap_or_default();
    if raw.is_empty() {
        return error(StatusCode::BAD_REQUEST, "Missing required parameter: number");
    }
    let service = query_param(&uri, "service").unwrap_or_else(|| "sip".to_owned());
    let number = match E164::parse(&raw) {
        Ok(n) => n,
        Err(e) => {
            return reply(StatusCode::BAD_REQUEST, json!({"error": format!("Invalid phone number: {e}"), "phone_number": raw}));
        }
    };
    tracing::debug!(number = %number, "lookup");
    let looked = match app.resolver.lookup(&number).await {
        Ok(l) => l,
        Err(e) => {
            let status = match &e {
                ResolveError::Node(n) => node_error_status(n),
                ResolveError::Deadline(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            return reply(status, json!({"error": e.to_string(), "phone_number": raw, "status": "error"}));
        }
    };
    let from_cache = looked.source == AnswerSource::Cache;
    let reply_key = format!("{service}\0{raw}");
    if from_cache {
        let mut replies = app.replies.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((a, body)) = replies.get(&reply_key)
            && Arc::ptr_eq(a, &looked.answer) {
                return reply_bytes(StatusCode::OK, body.clone());
            }
    }
    let answer = &looked.answer;
    let Some(best) = answer.best(&service) else {
        return reply(StatusCode::NOT_FOUND, json!({"phone_number": raw, "status": "not_found"}));
    };
    let record = answer.record_of(best);
    let source = match looked.source {
        AnswerSource::Node => "node",
        AnswerSource::Cache => "cache",
        AnswerSource::Stale(_) => "stale",
    };
    let body = Bytes::from(to_flask_bytes(&json!({
            "enum_domain": number.e164_arpa(),
            "expires_in": record.map_or(0, |r| r.expires_in),
            "naptr_records": answer.naptrs.iter().map(naptr_json).collect::<Vec<_>>(),
            "nvs_key": record.map(|r| r.name.clone()),
            "owner_address": record.map_or(String::new(), |r| r.owner.clone()),
            "phone_number": raw,
            "sip_uri": best.uri,
            "source": source,
            "status": "success",
            "verified_by": record.and_then(|r| r.signed_by.clone()),
    })));
    if from_cache {
        app.replies.lock().unwrap_or_else(|p| p.into_inner()).put(reply_key, (looked.answer.clone(), body.clone()));
    }
    reply_bytes(StatusCode::OK, body)
}

// ---- /enum/list ------------------------------------------------------------

#[derive(Clone, Debug)]
struct Listed {
    number: E164,
    index: u32,
    nvs_key: String,
    sip_uri: Option<String>,
    expires_in: i64,
    layout: &'static str,
}

fn first_sip_uri_enumer(number: &E164, value: &str) -> Option<String> {
    let record = parse_enumer_value(value);
    let aus = number.aus();
    let mut naptrs: Vec<Naptr> = record
        .naptrs
        .into_iter()
        .filter_map(|l| {
            let regexp = NaptrRegexp::parse(&l.regexp).ok()?;
            Some(Naptr {
                order: l.order,
                preference: l.preference,
                flags: "u".into(),
                service: l.service,
                uri: regexp.apply(&aus),
                regexp,
                ttl: 0,
                record: 0,
            })
        })
        .collect();
    sort_naptrs(&mut naptrs);
    naptrs.into_iter().find(|n| n.offers("sip") && n.uri.is_some()).and_then(|n| n.uri)
}

fn first_sip_uri_privatenumer(number: &E164, value: &str) -> Option<String> {
    let aus = number.aus();
    parse_privatenumer_value(value)
        .into_iter()
        .find_map(|e| NaptrRegexp::parse(&e.naptr_regexp()).ok().and_then(|r| r.apply(&aus)))
}

async fn listing(app: &App) -> Result<Arc<Vec<Listed>>, NvsError> {
    let mut guard = app.listing.lock().await;
    if let Some((at, list)) = guard.as_ref()
        && at.elapsed() < app.list_cache {
            return Ok(list.clone());
        }
    let privatenumer = app.resolver.config().privatenumer_layout;
    let entries = app.node.name_filter("^enum:", 0, 0, 0).await?;
    let mut out: Vec<Listed> = entries
        .into_iter()
        .filter(|e| e.is_live())
        .filter_map(|e| {
            let value = e.value.to_string_lossy();
            if let Some((number, index)) = parse_enumer_name(&e.name) {
                let sip_uri = first_sip_uri_enumer(&number, &value);
                return Some(Listed { number, index, nvs_key: e.name, sip_uri, expires_in: e.expires_in, layout: "enumer" });
            }
            let number = parse_privatenumer_name(&e.name).filter(|_| privatenumer)?;
            let sip_uri = first_sip_uri_privatenumer(&number, &value);
            Some(Listed { number, index: 0, nvs_key: e.name, sip_uri, expires_in: e.expires_in, layout: "privatenumer" })
        })
        .collect();
    out.sort_by(|a, b| a.number.cmp(&b.number).then(a.index.cmp(&b.index)));
    let list = Arc::new(out);
    *guard = Some((Instant::now(), list.clone()));
    Ok(list)
}

async fn list(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let parse = |k: &str, default: usize| -> Result<usize, Response> {
        match query_param(&uri, k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| error(StatusCode::BAD_REQUEST, format!("{k} must be a non-negative integer"))),
        }
    };
    let (limit, offset) = match (parse("limit", 100), parse("offset", 0)) {
        (Ok(l), Ok(o)) => (l.clamp(1, 1000), o),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let all = match listing(&app).await {
        Ok(l) => l,
        Err(e) => return reply(node_error_status(&e), json!({"error": e.to_string(), "status": "error"})),
    };
    let records: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| {
            json!({
                "expires_in": r.expires_in,
                "layout": r.layout,
                "nvs_key": r.nvs_key,
                "phone_number": r.number.to_string(),
                "sip_uri": r.sip_uri,
            })
        })
        .collect();
    reply(
        StatusCode::OK,
        json!({
            "count": records.len(),
            "limit": limit,
            "offset": offset,
            "records": records,
            "status": "success",
            "total": all.len(),
        }),
    )
}

// ---- /enum/register --------------------------------------------------------

fn bearer_ok(headers: &HeaderMap, token: &str) -> bool {
    let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(given) = v.strip_prefix("Bearer ") else { return false };
    // Constant-time comparison.
    given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn register(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let Some(token) = &app.register_token else {
        return error(StatusCode::FORBIDDEN, "Registration is disabled on this resolver (no register_token configured)");
    };
    if !bearer_ok(&headers, token) {
        let mut r = error(StatusCode::UNAUTHORIZED, "Missing or wrong operator token (Authorization: Bearer <token>)");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"enum-register\""));
        return r;
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if !json_type {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
    }
    let body = match axum::body::to_bytes(body, MAX_REGISTER_BODY).await {
        Ok(b) => b,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_REGISTER_BODY} bytes")),
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("Malformed JSON body: {e}")),
    };
    let (Some(raw_number), Some(sip_uri)) = (body.get("phone_number"), body.get("sip_uri")) else {
        return error(StatusCode::BAD_REQUEST, "Missing required fields: phone_number, sip_uri");
    };
    let Some(raw_number) = raw_number.as_str() else {
        return error(StatusCode::BAD_REQUEST, "phone_number must be a string");
    };
    let number = match E164::parse(raw_number) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("Invalid phone number: {e}")),
    };
    let Some(sip_uri) = sip_uri.as_str() else { return error(StatusCode::BAD_REQUEST, "sip_uri must be a string") };
    let mut uris = vec![sip_uri.to_owned()];
    match body.get("fallback_uris") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item.as_str() {
                    Some(s) => uris.push(s.to_owned()),
                    None => return error(StatusCode::BAD_REQUEST, "fallback_uris must be an array of strings"),
                }
            }
        }
        Some(_) => return error(StatusCode::BAD_REQUEST, "fallback_uris must be an array of strings"),
    }
    if uris.len() > 10 {
        return error(StatusCode::BAD_REQUEST, "at most 9 fallback_uris are allowed");
    }
    for (i, u) in uris.iter().enumerate() {
        let field = if i == 0 { "sip_uri".to_owned() } else { format!("fallback_uris[{}]", i - 1) };
        if let Err(e) = registry::validate_uri(u) {
            return error(StatusCode::BAD_REQUEST, format!("{field}: {e}"));
        }
    }
    let days = match body.get("days") {
        None | Some(Value::Null) => 365,
        Some(v) => match v.as_i64() {
            Some(d) if (1..=366_000_000).contains(&d) => d,
            _ => return error(StatusCode::BAD_REQUEST, "days must be an integer from 1 to 366000000"),
        },
    };
    let layout = body.get("layout").and_then(Value::as_str).unwrap_or("enumer");
    let signature = match body.get("signature") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match registry::sig_line(s) {
            Ok(line) => Some(line),
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        },
        Some(_) => return error(StatusCode::BAD_REQUEST, "signature must be a string"),
    };

    let (name, value) = match layout {
        "enumer" => {
            let slot = match registry::free_slot(&app.node, &number, app.resolver.config().max_records).await {
                Ok(n) => n,
                Err(e @ RegistryError::NoFreeSlot { .. }) => return error(StatusCode::CONFLICT, e.to_string()),
                Err(RegistryError::Node(e)) => {
                    return reply(node_error_status(&e), json!({"error": e.to_string(), "status": "error"}));
                }
                Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
            };
            let lines = match registry::e2u_lines_for_uris(&uris) {
                Ok(l) => l,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            (number.enumer_name(slot), registry::enumer_value(&lines, signature.as_deref(), None))
        }
        "privatenumer" => {
            if signature.is_some() {
                return error(StatusCode::BAD_REQUEST, "the privatenumer layout has no place for a signature");
            }
            let value = uris.iter().map(|u| format!("\"!^.*$!{u}!\"")).collect::<Vec<_>>().join("|");
            (number.privatenumer_name(), value)
        }
        other => return error(StatusCode::BAD_REQUEST, format!("unknown layout {other:?} (enumer or privatenumer)")),
    };
    tracing::debug!(nvs_key = %name, "registering");
    match registry::register(&app.node, &name, &value, days).await {
        Ok(txid) => reply(
            StatusCode::CREATED,
            json!({
                "enum_domain": number.e164_arpa(),
                "message": "ENUM record registered (requires confirmation)",
                "nvs_key": name,
                "phone_number": raw_number,
                "status": "success",
                "txid": txid,
            }),
        ),
        Err(RegistryError::Node(NvsError::Rpc { message, code, .. })) => reply(
            StatusCode::CONFLICT,
            json!({"error": format!("the Emercoin node refused the registration ({code}): {message}"), "status": "error"}),
        ),
        Err(RegistryError::Node(e)) => reply(node_error_status(&e), json!({"error": e.to_string(), "status": "error"})),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
