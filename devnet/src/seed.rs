//! Demo data: a verifier `ver:enum` and a few numbers, registered through the
//! ordinary RPC client so the demo exercises the same path as a real node.
//!
//! | number | what it shows |
//! |---|---|
//! | +15551234567 | two signed records, three NAPTRs in two order groups |
//! | +4930123456 | a signed record and an unsigned squatter at `:1` (ignored) |
//! | +442079460000 | a signed record revoked through the verifier's SRL (ignored) |
//! | +15550000001 | only in the privatenumer layout (found when that layout is on) |

use ness_core::nvs::{NameValue, NvsClient, NvsError};

/// The verifier name the demo trusts.
pub const VERIFIER: &str = "ver:enum";

/// What the seeding did.
#[derive(Clone, Debug)]
pub struct SeedReport {
    /// False when the devnet already held the demo data.
    pub created: bool,
    pub verifier_address: String,
    pub height: u64,
}

async fn signed_record(client: &NvsClient, verifier_address: &str, name: &str, lines: &str) -> Result<(), NvsError> {
    let sig = client.sign_message(verifier_address, name).await?;
    let value = format!("{lines}\nSIG={VERIFIER}|{sig}");
    client.name_new(name, &NameValue::from(value.as_str()), 365, None).await?;
    Ok(())
}

/// Seed the demo numbers unless `ver:enum` exists already.
pub async fn seed_demo(client: &NvsClient) -> Result<SeedReport, NvsError> {
    if client.get_block_count().await? == 0 {
        client.call("generate", vec![serde_json::json!(101)]).await?;
    }
    if let Some(v) = client.name_show(VERIFIER).await? {
        let height = client.get_block_count().await?;
        return Ok(SeedReport { created: false, verifier_address: v.address, height });
    }
    // The verifier keeps its key: it registers with toaddress (docs/emercoin.md §6).
    let verifier_address = client.get_new_address(true).await?;
    client
        .name_new(
            VERIFIER,
            &NameValue::from("Privateness demo ENUM verifier\nSRL=4|srl:enum-%02x"),
            365,
            Some(&verifier_address),
        )
        .await?;

    signed_record(
        client,
        &verifier_address,
        "enum:15551234567:0",
        "E2U+sip=100|10|!^\\+(.*)$!sip:\\1@pbx.example.org!\nE2U+sip=200|10|!^(.*)$!sip:\\1@backup.example.net!\nTTL=300",
    )
    .await?;
    signed_record(client, &verifier_address, "enum:15551234567:1", "E2U+sip=100|20|!^.*$!sip:alice@sip.example.com!")
        .await?;

    signed_record(client, &verifier_address, "enum:4930123456:0", "E2U+sip=10|10|!^.*$!sip:berlin@pbx.example.de!")
        .await?;
    client
        .name_new(
            "enum:4930123456:1",
            &NameValue::from("E2U+sip=1|1|!^.*$!sip:squatter@evil.example!"),
            365,
            None,
        )
        .await?;

    let revoked = "enum:442079460000:0";
    signed_record(client, &verifier_address, revoked, "E2U+sip=100|10|!^.*$!sip:revoked@old.example.co.uk!").await?;
    let bucket = ness_core::enumer::trust::srl_hash(revoked.as_bytes()) & 15;
    client
        .name_new(&format!("srl:enum-{bucket:02x}"), &NameValue::from(revoked), 365, Some(&verifier_address))
        .await?;

    let legacy = ness_core::enumer::E164::parse("+15550000001").expect("a valid number").privatenumer_name();
    client
        .name_new(
            &legacy,
            &NameValue::from("\"!^.*$!sip:legacy@privatenumer.example!\"|\"!^.*$!sip:backup@privatenumer.example!\""),
            365,
            None,
        )
        .await?;

    client.call("generate", vec![serde_json::json!(1)]).await?;
    let height = client.get_block_count().await?;
    Ok(SeedReport { created: true, verifier_address, height })
}

/// Register `count` signed numbers +1555000XXXX (XXXX = 0000…), one NAPTR each,
/// `100 10 "u" "E2U+sip" "!^.*$!sip:XXXX@127.0.0.1:5090!"` — the records of the
/// Kamailio/nsd anchor benchmark, so both sides serve the same data. Beyond 10 000
/// the numbers go on as +1555NNNNNNN (up to 10 000 000). Needs the demo verifier
/// (see [`seed_demo`]). Returns how many were created (existing ones are kept).
pub async fn seed_numbers(client: &NvsClient, count: u32) -> Result<u32, NvsError> {
    let verifier = client
        .name_show(VERIFIER)
        .await?
        .ok_or_else(|| NvsError::Config("seed the demo verifier first".into()))?
        .address;
    let mut created = 0;
    for i in 0..count.min(10_000_000) {
        let name = format!("enum:1555{i:07}:0");
        if client.name_show(&name).await?.is_some() {
            continue;
        }
        signed_record(client, &verifier, &name, &format!("E2U+sip=100|10|!^.*$!sip:{i:04}@127.0.0.1:5090!")).await?;
        created += 1;
    }
    Ok(created)
}
