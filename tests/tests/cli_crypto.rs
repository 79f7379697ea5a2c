//! The `ness` crypto commands as ptool users run them: the documented test vectors
//! through the real binary, round trips of v1 and v2 envelopes, exit codes (0 valid,
//! 1 failure, 2 usage), key file permissions.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use ness_tests::{bin, run};

const RECIPIENT_PRIV: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI";
const RECIPIENT_PUB: &str = "EyxEK-AQ-9V-cmAzKKp25x_MwVA6riGTJ9FNnJmT9HI";
const SIGN_SEED: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";
const SIGN_PUB: &str = "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw";
const ENVELOPE: &str = "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9_AsrhtHHygoaKjpKWmp6ipqqssOZXG1OH_as8u1odHLB97dG7zk9ScW5foqtm_XVKz-9ncvRc";
const SIGNATURE: &str = "SwlhL7Wh0swl46b7nm2TIjAEBekezr-G_7b9sJyA9zsct_09-KaxTZdnYBqJ90i0IavQgcgDnIVb1MfmCrUrAw";

fn ness(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = run(&bin("ness"), args, &[("HOME", dir.to_str().unwrap())], Duration::from_secs(20));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = ness(dir, args);
    assert_eq!(code, 0, "ness {args:?}: {err}");
    out
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_owned()
}

#[test]
fn ptool_vectors_through_the_binary() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    std::fs::write(d.join("sms.enc"), ENVELOPE).unwrap();
    ok(d, &["open", "--priv-b64", RECIPIENT_PRIV, "--in", &p(d, "sms.enc"), "--out", &p(d, "sms.txt")]);
    assert_eq!(std::fs::read(d.join("sms.txt")).unwrap(), b"Telegram code: 12345");

    ok(d, &["sign", "--priv-b64", SIGN_SEED, "--in", &p(d, "sms.enc"), "--out", &p(d, "sms.sig")]);
    assert_eq!(std::fs::read_to_string(d.join("sms.sig")).unwrap(), SIGNATURE, "no trailing newline");
    let (code, out, err) = ness(d, &["verify", "--pub-b64", SIGN_PUB, "--in", &p(d, "sms.enc"), "--sig", &p(d, "sms.sig")]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    std::fs::write(d.join("other.txt"), "x").unwrap();
    let (code, out, err) = ness(d, &["verify", "--pub-b64", SIGN_PUB, "--in", &p(d, "other.txt"), "--sig", &p(d, "sms.sig")]);
    assert_eq!((code, out.as_str(), err.as_str()), (1, "", ""), "ptool_verify prints nothing");

    ok(d, &[
        "receipt", "--from-priv-b64", SIGN_SEED, "--from-pub-b64", SIGN_PUB, "--to-id", "LISTING123",
        "--envelope", &p(d, "sms.enc"), "--out", &p(d, "receipt.json"),
    ]);
    let r = std::fs::read_to_string(d.join("receipt.json")).unwrap();
    assert!(r.starts_with(r#"{"from":"6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw","msg_hash":"fAhKbWzklyPWeAOK-gDGuTXiQEZfdnKi-VxLdRwfE-A","sig":""#), "{r}");
    assert!(r.contains(r#""to":{"listing":"LISTING123"},"ts":""#) && r.ends_with("+00:00\"}"), "{r}");
    let out = ok(d, &["receipt-verify", "--receipt", &p(d, "receipt.json"), "--envelope", &p(d, "sms.enc"), "--from-pub-b64", SIGN_PUB]);
    assert!(out.starts_with("valid receipt from"), "{out}");
    let (code, _, err) = ness(d, &["receipt-verify", "--receipt", &p(d, "receipt.json"), "--envelope", &p(d, "other.txt")]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn keys_envelopes_and_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let keys = p(d, "me.key.json");
    let out = ok(d, &["--json", "keygen", "--out", &keys]);
    assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o600);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ok(d, &["pubkey", "--keyfile", &keys, "--x25519"]).trim(), v["x25519"].as_str().unwrap());
    let (code, _, err) = ness(d, &["keygen", "--out", &keys]);
    assert_eq!(code, 1, "never overwrites: {err}");

    std::fs::write(d.join("plain"), "Привет 👋 from +4915112345678").unwrap();
    // v1 for the key file's own X25519 key, then v2 signed by it.
    ok(d, &["seal", "--peer-pub-keyfile", &keys, "--in", &p(d, "plain"), "--out", &p(d, "v1.enc")]);
    ok(d, &["open", "--priv-keyfile", &keys, "--in", &p(d, "v1.enc"), "--out", &p(d, "v1.txt")]);
    assert_eq!(std::fs::read(d.join("v1.txt")).unwrap(), std::fs::read(d.join("plain")).unwrap());
    ok(d, &[
        "seal", "--version", "2", "--sign-keyfile", &keys, "--message-id", "00112233445566778899aabbccddeeff",
        "--peer-pub-keyfile", &keys, "--in", &p(d, "plain"), "--out", &p(d, "v2.enc"),
    ]);
    let meta = ok(d, &["--json", "open", "--priv-keyfile", &keys, "--in", &p(d, "v2.enc"), "--out", &p(d, "v2.txt")]);
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["version"], 2);
    assert_eq!(meta["message_id"], "00112233445566778899aabbccddeeff");
    assert_eq!(meta["sender"], v["ed25519"]);
    assert_eq!(std::fs::read(d.join("v2.txt")).unwrap(), std::fs::read(d.join("plain")).unwrap());

    // Sealed for someone else: a clear failure, exit 1.
    ok(d, &["seal", "--peer-pub-b64", RECIPIENT_PUB, "--in", &p(d, "plain"), "--out", &p(d, "theirs.enc")]);
    let (code, _, err) = ness(d, &["open", "--priv-keyfile", &keys, "--in", &p(d, "theirs.enc"), "--out", &p(d, "x")]);
    assert_eq!(code, 1);
    assert!(err.contains("not sealed for this key"), "{err}");

    // Usage errors exit 2: two key sources, or none.
    let (code, _, _) = ness(d, &["sign", "--priv-b64", SIGN_SEED, "--priv-keyfile", &keys, "--in", &keys, "--out", &p(d, "s")]);
    assert_eq!(code, 2);
    let (code, _, _) = ness(d, &["receipt", "--from-priv-b64", SIGN_SEED, "--from-pub-b64", SIGN_PUB, "--envelope", &keys, "--out", &p(d, "r")]);
    assert_eq!(code, 2);
    // --to-pub-keyfile alone works (ptool's fails with a usage error).
    ok(d, &[
        "receipt", "--from-priv-b64", SIGN_SEED, "--from-pub-b64", SIGN_PUB, "--to-pub-keyfile", &keys,
        "--envelope", &p(d, "v1.enc"), "--out", &p(d, "r.json"),
    ]);
    assert!(std::fs::read_to_string(d.join("r.json")).unwrap().contains(&format!(r#""to":"{}""#, v["ed25519"].as_str().unwrap())));

    // A key file others can read is refused for private keys.
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, _, err) = ness(d, &["open", "--priv-keyfile", &keys, "--in", &p(d, "v1.enc"), "--out", &p(d, "x")]);
    assert_eq!(code, 1);
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn conf_reads_like_ptool() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    std::fs::create_dir_all(d.join(".emercoin")).unwrap();
    std::fs::write(d.join(".emercoin/emercoin.conf"), "rpcuser=x\n[test]\nrpcport=16662\n").unwrap();
    let out = ok(d, &["conf"]);
    assert_eq!(
        out,
        format!(
            r#"{{"datadir":null,"path":"{}","rpcconnect":"127.0.0.1","rpcpassword":null,"rpcport":16662,"rpcuser":"x"}}"#,
            d.join(".emercoin/emercoin.conf").display()
        ) + "\n"
    );
}
