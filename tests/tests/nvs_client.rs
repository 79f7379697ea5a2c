//! The node client (ness-core::nvs) against a devnet in the same process: values
//! that are not UTF-8, deleted and expired names, cookie authentication across a
//! node restart, emercoin.conf, and each way a node can fail — each call bounded
//! by its deadline.

use std::time::{Duration, Instant};

use ness_core::nvs::{BlockingNvsClient, Credentials, NameValue, NodeConfig, NvsClient, NvsError};
use ness_devnet::{DevnetConfig, Fault};

async fn devnet(datadir: Option<std::path::PathBuf>, listen: std::net::SocketAddr) -> ness_devnet::DevnetHandle {
    ness_devnet::start(DevnetConfig {
        listen,
        credentials: if datadir.is_some() { None } else { Some(("u".into(), "p".into())) },
        datadir,
        automine: true,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn any_port() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test]
async fn values_flags_and_writes() {
    let d = devnet(None, any_port()).await;
    let c = NvsClient::new(&d.node_config()).unwrap();
    assert_eq!(c.get_block_count().await.unwrap(), 0);
    // Height 0 is initial block download: names cannot be read.
    assert_eq!(c.name_show("x:y").await, Err(NvsError::Syncing));
    c.call("generate", vec![serde_json::json!(10)]).await.unwrap();

    let binary = NameValue(vec![0xff, 0x00, 0xfe, b'A']);
    c.name_new("test:bin", &binary, 1, None).await.unwrap();
    let e = c.name_show("test:bin").await.unwrap().unwrap();
    assert_eq!(e.value, binary, "bytes that are not UTF-8 come back exactly (base64 retry)");

    let text = NameValue::from("Привет ☎ café\nline 2");
    c.name_new("test:utf8", &text, 1, None).await.unwrap();
    assert_eq!(c.name_show("test:utf8").await.unwrap().unwrap().value, text);

    assert_eq!(c.name_show("test:missing").await.unwrap(), None);
    c.name_delete("test:utf8").await.unwrap();
    assert_eq!(c.name_show("test:utf8").await.unwrap(), None, "deleted means not found");
    assert!(c.name_show_any("test:utf8").await.unwrap().unwrap().deleted);

    c.call("generate", vec![serde_json::json!(175)]).await.unwrap();
    assert_eq!(c.name_show("test:bin").await.unwrap(), None, "expired means not found");
    assert!(c.name_show_any("test:bin").await.unwrap().unwrap().expired);

    let err = c.name_new("test:big", &NameValue(vec![b'v'; 20481]), 1, None).await.unwrap_err();
    assert_eq!(err.rpc_message(), Some("value is too long.\n"));
    let filtered = c.name_filter("^test:", 0, 0, 0).await.unwrap();
    assert!(filtered.iter().any(|f| f.name == "test:bin" && f.expired && f.value == binary));
    let history = c.name_history("test:utf8", true).await.unwrap();
    assert_eq!(history.iter().map(|h| h.operation.as_str()).collect::<Vec<_>>(), ["name_new", "name_delete"]);
    d.stop().await;
}

#[tokio::test]
async fn cookie_auth_survives_a_node_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = devnet(Some(dir.path().to_owned()), any_port()).await;
    let addr = d.addr;
    let cookie = d.cookie_file.clone().unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&cookie).unwrap().permissions().mode() & 0o777, 0o600);
    let config = NodeConfig::new(d.url(), Credentials::CookieFile(cookie.clone()));
    let c = NvsClient::new(&config).unwrap();
    c.get_block_count().await.unwrap();
    d.stop().await;
    assert!(!cookie.exists(), "the node removes its cookie when it stops");
    assert!(matches!(c.get_block_count().await, Err(NvsError::Unreachable { .. })));
    // Restarted on the same port with a new cookie: the client reads it again.
    let d = devnet(Some(dir.path().to_owned()), addr).await;
    assert_eq!(c.get_block_count().await.unwrap(), 0);
    // State survived the restart.
    d.stop().await;

    // The same through emercoin.conf (regtest section, cookie in <datadir>/regtest).
    let d = devnet(Some(dir.path().to_owned()), any_port()).await;
    let conf = dir.path().join("emercoin.conf");
    std::fs::write(&conf, format!("regtest=1\n[regtest]\nrpcport={}\n", d.addr.port())).unwrap();
    let c = NvsClient::new(&NodeConfig::from_emercoin_conf(&conf).unwrap()).unwrap();
    c.get_block_count().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn every_failure_is_typed_and_bounded() {
    let d = devnet(None, any_port()).await;
    let config = d.node_config().with_timeout(Duration::from_millis(300));
    let c = NvsClient::new(&config).unwrap();
    let wrong = NvsClient::new(&NodeConfig::new(
        d.url(),
        Credentials::UserPassword { user: "u".into(), password: "wrong".into() },
    ))
    .unwrap();
    assert_eq!(wrong.get_block_count().await, Err(NvsError::Unauthorized));

    let cases = [
        (Fault::Warmup("Loading block index...".into()), "warm-up"),
        (Fault::Busy, "busy"),
        (Fault::Garbage, "garbage"),
        (Fault::Drop, "drop"),
        (Fault::Hang, "hang"),
    ];
    for (fault, what) in cases {
        d.with_node(|n| n.fault = fault.clone());
        let started = Instant::now();
        let e = c.name_show("ver:enum").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(1500), "{what}: took {:?}", started.elapsed());
        assert!(e.is_node_failure(), "{what}: {e}");
        match what {
            "warm-up" => assert_eq!(e, NvsError::WarmingUp("Loading block index...".into())),
            "busy" => assert_eq!(e, NvsError::Busy),
            "garbage" => assert!(matches!(e, NvsError::Malformed { status: 200, .. })),
            "drop" => assert!(matches!(e, NvsError::Unreachable { .. })),
            _ => assert!(matches!(e, NvsError::Timeout { .. }), "{e}"),
        }
    }
    d.with_node(|n| n.fault = Fault::None);
    d.stop().await;

    // Nobody listening at all.
    let dead = NvsClient::new(&NodeConfig::new("http://127.0.0.1:9/", Credentials::None)).unwrap();
    assert!(matches!(dead.get_block_count().await, Err(NvsError::Unreachable { .. })));
}

#[test]
fn the_blocking_client_works_from_a_plain_thread() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = rt.block_on(devnet(None, any_port()));
    let config = d.node_config();
    let height = std::thread::spawn(move || {
        let c = BlockingNvsClient::new(&config).unwrap();
        c.call("generate", vec![serde_json::json!(3)]).unwrap();
        c.run(|c| c.get_block_count()).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(height, 3);
    rt.block_on(d.stop());
}
