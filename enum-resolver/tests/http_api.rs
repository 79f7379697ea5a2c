//! The HTTP API in process against a devnet: privatenumer-compatible bytes, JSON
//! for every error, CORS in one layer, registration rules (privatenumer bugs E2 not
//! copied), and the listing.

use std::time::Duration;

use ness_core::nvs::NvsClient;
use ness_enum_resolver::config::Config;
use reqwest::header::{HeaderMap, HeaderValue};

const TOKEN: &str = "a-register-token-for-tests";

struct Env {
    devnet: ness_devnet::DevnetHandle,
    running: ness_enum_resolver::Running,
    base: String,
}

async fn env() -> Env {
    let devnet = ness_devnet::start(ness_devnet::DevnetConfig {
        credentials: Some(("u".into(), "p".into())),
        automine: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = NvsClient::new(&devnet.node_config()).unwrap();
    ness_devnet::seed::seed_demo(&client).await.unwrap();
    let mut config: Config = toml::from_str(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\nregister_token = \"{TOKEN}\"\nlist_cache_secs = 0\n[dns]\nlisten = []\n"
    ))
    .unwrap();
    config.resolver.privatenumer_layout = true;
    let running = ness_enum_resolver::start(&config, devnet.node_config()).await.unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    Env { devnet, running, base }
}

async fn get(url: &str, headers: HeaderMap) -> (u16, HeaderMap, String) {
    let r = reqwest::Client::new().get(url).headers(headers).timeout(Duration::from_secs(5)).send().await.unwrap();
    let status = r.status().as_u16();
    let h = r.headers().clone();
    (status, h, r.text().await.unwrap())
}

async fn post(url: &str, token: Option<&str>, content_type: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().post(url).header("content-type", content_type).body(body);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")))
}

#[tokio::test]
async fn replies_are_flask_style_json_including_errors() {
    let e = env().await;
    let (status, h, body) = get(&format!("{}/enum/lookup", e.base), HeaderMap::new()).await;
    assert_eq!(status, 400);
    // Byte-exact reply of the original (compat spec A1.4).
    assert_eq!(body, "{\"error\":\"Missing required parameter: number\"}\n");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["access-control-allow-origin"], "*");

    let (status, _, body) = get(&format!("{}/enum/lookup?number=%2B15551234567", e.base), HeaderMap::new()).await;
    assert_eq!(status, 200);
    let keys: Vec<String> = {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_object().unwrap().keys().cloned().collect()
    };
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(body.starts_with("{\"enum_domain\":\"7.6.5.4.3.2.1.5.5.5.1.e164.arpa\",\"expires_in\":"), "{body}");
    assert!(body.ends_with("\"status\":\"success\",\"verified_by\":\"ver:enum\"}\n"), "{body}");

    // Not found: the original's exact shape.
    let (status, _, body) = get(&format!("{}/enum/lookup?number=%2B15550000009", e.base), HeaderMap::new()).await;
    assert_eq!((status, body.as_str()), (404, "{\"phone_number\":\"+15550000009\",\"status\":\"not_found\"}\n"));
    // Unicode digits are not digits (bug E2/13), and the error is escaped ASCII JSON.
    let (status, _, body) = get(&format!("{}/enum/lookup?number=%D9%A1%D9%A2", e.base), HeaderMap::new()).await;
    assert_eq!(status, 400);
    assert!(body.contains("\\u0661\\u0662"), "{body}");
    // The privatenumer layout, when enabled.
    let (status, _, body) = get(&format!("{}/enum/lookup?number=%2B15550000001", e.base), HeaderMap::new()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"sip_uri\":\"sip:legacy@privatenumer.example\""), "{body}");

    for (url, code) in [(format!("{}/nope", e.base), 404), (format!("{}/enum/lookup/", e.base), 404)] {
        let (status, _, body) = get(&url, HeaderMap::new()).await;
        assert_eq!(status, code);
        assert!(body.starts_with("{\"error\":"), "{body}");
    }
    let r = reqwest::Client::new().delete(format!("{}/enum/lookup", e.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert!(r.text().await.unwrap().starts_with("{\"error\":\"Method Not Allowed"));
    e.running.stop().await;
    e.devnet.stop().await;
}

#[tokio::test]
async fn cors_is_answered_once() {
    let e = env().await;
    let mut h = HeaderMap::new();
    h.insert("origin", HeaderValue::from_static("https://app.example"));
    let (_, headers, _) = get(&format!("{}/health", e.base), h).await;
    assert_eq!(headers.get_all("access-control-allow-origin").iter().count(), 1);
    assert_eq!(headers["access-control-allow-origin"], "https://app.example");
    assert_eq!(headers["vary"], "Origin");
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/enum/register", e.base))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["access-control-allow-headers"], "authorization, content-type");
    assert!(r.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    e.running.stop().await;
    e.devnet.stop().await;
}

#[tokio::test]
async fn registration_is_guarded_and_validated() {
    let e = env().await;
    let url = format!("{}/enum/register", e.base);
    let ok = br#"{"phone_number":"+15557770001","sip_uri":"sip:a@b.example","fallback_uris":["sip:c@d.example"]}"#.to_vec();
    assert_eq!(post(&url, None, "application/json", ok.clone()).await.0, 401);
    assert_eq!(post(&url, Some("wrong-token-xxxxxxxxxx"), "application/json", ok.clone()).await.0, 401);
    assert_eq!(post(&url, Some(TOKEN), "text/plain", ok.clone()).await.0, 415);
    let bad: [(&[u8], &str); 7] = [
        (b"{", "Malformed JSON"),
        (b"{}", "Missing required fields"),
        (br#"{"phone_number":5,"sip_uri":"sip:a@b"}"#, "phone_number must be a string"),
        (br#"{"phone_number":"+1555777","sip_uri":"sip:a!@b"}"#, "cannot be stored"),
        (br#"{"phone_number":"+1555777","sip_uri":"sip:a@b","fallback_uris":"xy"}"#, "array of strings"),
        (br#"{"phone_number":"abc","sip_uri":"sip:a@b"}"#, "Invalid phone number"),
        (br#"{"phone_number":"+1555777","sip_uri":"a@b"}"#, "scheme"),
    ];
    for (body, want) in bad {
        let (status, v) = post(&url, Some(TOKEN), "application/json", body.to_vec()).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{v} should say {want}");
    }
    let (status, v) = post(&url, Some(TOKEN), "application/json", vec![b' '; 70_000]).await;
    assert_eq!(status, 413, "{v}");

    let (status, v) = post(&url, Some(TOKEN), "application/json", ok.clone()).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["nvs_key"], "enum:15557770001:0");
    // A second registration goes to the next slot, where resolvers read it.
    let (status, v) = post(&url, Some(TOKEN), "application/json", ok).await;
    assert_eq!((status, v["nvs_key"].as_str()), (201, Some("enum:15557770001:1")));

    // The listing shows live ENUM names with their first SIP URI.
    let (status, _, body) = get(&format!("{}/enum/list?limit=1000", e.base), HeaderMap::new()).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rec = v["records"].as_array().unwrap().iter().find(|r| r["nvs_key"] == "enum:15557770001:0").unwrap();
    assert_eq!(rec["sip_uri"], "sip:a@b.example");
    assert_eq!(rec["phone_number"], "+15557770001");
    assert_eq!(v["count"], v["total"]);
    let (status, _, _) = get(&format!("{}/enum/list?limit=abc", e.base), HeaderMap::new()).await;
    assert_eq!(status, 400);
    e.running.stop().await;
    e.devnet.stop().await;
}
