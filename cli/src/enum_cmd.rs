//! `ness enum lookup|register|list`.

use clap::{Args, Subcommand};
use ness_core::enumer::registry;
use ness_core::enumer::{AnswerSource, E164, Resolver, ResolverConfig, TrustPolicy, parse_enumer_name, parse_enumer_value};
use serde_json::{Value, json};

use crate::node::NodeArgs;
use crate::{Failure, Output};

#[derive(Subcommand, Debug)]
pub enum EnumCommand {
    /// Resolve a number as the PBX modules do (trust rules, RFC 3403 order).
    Lookup(LookupArgs),
    /// Register an ENUMER record (enum:<digits>:<n>) with name_new.
    Register(RegisterArgs),
    /// List the ENUM records on the node (a full scan: not for call paths).
    List(ListArgs),
}

#[derive(Args, Debug)]
pub struct TrustArgs {
    /// Trusted verifier NVS name (repeatable).
    #[arg(long = "verifier", default_values_t = vec!["ver:enum".to_owned()])]
    pub verifiers: Vec<String>,
    /// Count unsigned records too (test networks only).
    #[arg(long)]
    pub no_trust: bool,
    /// Also read the privatenumer layout (enum:<reversed digits>.e164.arpa).
    #[arg(long)]
    pub privatenumer_layout: bool,
}

#[derive(Args, Debug)]
pub struct LookupArgs {
    /// The number, e.g. +15551234567.
    pub number: String,
    /// Service to route (sip, iax2, …; empty for any).
    #[arg(long, default_value = "sip")]
    pub service: String,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// The number, e.g. +15551234567.
    pub number: String,
    /// Target URIs in order of preference (order 100, preference 10, 20, …).
    pub uris: Vec<String>,
    /// Full E2U line instead of URIs, e.g. 'E2U+sip=100|10|!^(.*)$!sip:\1@pbx!' (repeatable).
    #[arg(long = "e2u")]
    pub e2u: Vec<String>,
    /// Verifier signature: 'SIG=ver:enum|<base64>' (from `ness verifier sign`).
    #[arg(long)]
    pub sig: Option<String>,
    /// TTL= line (seconds).
    #[arg(long)]
    pub ttl: Option<u32>,
    /// Record index (default: the first free slot, where resolvers will read it).
    #[arg(long)]
    pub index: Option<u32>,
    /// Rental days.
    #[arg(long, default_value_t = 365)]
    pub days: i64,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
}

pub async fn run(cmd: EnumCommand, node: &NodeArgs, out: &Output) -> Result<(), Failure> {
    match cmd {
        EnumCommand::Lookup(a) => lookup(a, node, out).await,
        EnumCommand::Register(a) => register(a, node, out).await,
        EnumCommand::List(a) => list(a, node, out).await,
    }
}

fn number(s: &str) -> Result<E164, Failure> {
    E164::parse(s).map_err(|e| Failure::usage(format!("{s:?} is not a phone number: {e}")))
}

async fn lookup(a: LookupArgs, node: &NodeArgs, out: &Output) -> Result<(), Failure> {
    let number = number(&a.number)?;
    let client = node.client().map_err(Failure::error)?;
    let config = ResolverConfig {
        trust: TrustPolicy { verifiers: a.trust.verifiers.clone(), require_signature: !a.trust.no_trust },
        privatenumer_layout: a.trust.privatenumer_layout,
        lookup_timeout: std::time::Duration::from_millis(node.timeout_ms.saturating_mul(4)),
        ..Default::default()
    };
    let resolver = Resolver::new(client, config);
    let looked = resolver.lookup(&number).await.map_err(|e| Failure::error(e.to_string()))?;
    let answer = looked.answer;
    let stale = matches!(looked.source, AnswerSource::Stale(_));
    let routes: Vec<_> = answer.routes(&a.service).collect();
    if out.json {
        let v = json!({
            "number": number.to_string(),
            "found": !routes.is_empty(),
            "stale": stale,
            "naptrs": answer.naptrs.iter().map(|n| json!({
                "order": n.order, "preference": n.preference, "flags": n.flags, "service": n.service,
                "regexp": n.regexp.as_str(), "uri": n.uri, "ttl": n.ttl,
                "record": answer.records.get(n.record).map(|r| r.name.clone()),
            })).collect::<Vec<_>>(),
            "records": answer.records.iter().map(|r| json!({
                "name": r.name, "owner": r.owner, "expires_in": r.expires_in, "ttl": r.ttl,
                "signed_by": r.signed_by, "problems": r.problems,
            })).collect::<Vec<_>>(),
            "ignored": answer.ignored.iter().map(|i| json!({
                "name": i.name, "owner": i.owner, "reason": i.reason.to_string(),
            })).collect::<Vec<_>>(),
        });
        out.json_value(&v);
    } else {
        for n in &routes {
            let rec = answer.record_of(n).map_or("", |r| r.name.as_str());
            println!("{:>5} {:>5}  {:<10} {}  ({rec})", n.order, n.preference, n.service, n.uri.as_deref().unwrap_or(""));
        }
        for i in &answer.ignored {
            eprintln!("ignored {}: {}", i.name, i.reason);
        }
        for r in &answer.records {
            for p in &r.problems {
                eprintln!("{}: unusable line {p}", r.name);
            }
        }
    }
    if routes.is_empty() {
        return Err(Failure::quiet_if(out.json, format!("{number}: no trusted ENUM record offers {:?}", a.service)));
    }
    Ok(())
}

async fn register(a: RegisterArgs, node: &NodeArgs, out: &Output) -> Result<(), Failure> {
    let number = number(&a.number)?;
    let lines: Vec<String> = if !a.e2u.is_empty() {
        if !a.uris.is_empty() {
            return Err(Failure::usage("give URIs or --e2u lines, not both"));
        }
        for l in &a.e2u {
            let parsed = parse_enumer_value(l);
            if parsed.naptrs.len() != 1 || !parsed.problems.is_empty() {
                return Err(Failure::usage(format!("{l:?} is not an E2U line (E2U+service=order|preference|regexp)")));
            }
            ness_core::enumer::NaptrRegexp::parse(&parsed.naptrs[0].regexp)
                .map_err(|e| Failure::usage(format!("{l:?}: {e}")))?;
        }
        a.e2u.clone()
    } else if a.uris.is_empty() {
        return Err(Failure::usage("give at least one target URI (or --e2u)"));
    } else {
        registry::e2u_lines_for_uris(&a.uris).map_err(Failure::usage)?
    };
    let sig = a.sig.as_deref().map(registry::sig_line).transpose().map_err(Failure::usage)?;
    let client = node.client().map_err(Failure::error)?;
    let slot = match a.index {
        Some(i) => i,
        None => registry::free_slot(&client, &number, 32).await.map_err(|e| Failure::error(e.to_string()))?,
    };
    let name = number.enumer_name(slot);
    let value = registry::enumer_value(&lines, sig.as_deref(), a.ttl);
    let txid = registry::register(&client, &name, &value, a.days).await.map_err(|e| Failure::error(e.to_string()))?;
    if out.json {
        out.json_value(&json!({"name": name, "txid": txid, "value": value}));
    } else {
        println!("{name} registered in transaction {txid} (readable once it is in a block)");
        if sig.is_none() {
            eprintln!("note: unsigned; resolvers that trust verifiers ignore it until a verifier signs {name}");
        }
    }
    Ok(())
}

async fn list(a: ListArgs, node: &NodeArgs, out: &Output) -> Result<(), Failure> {
    let client = node.client().map_err(Failure::error)?;
    let entries = client.name_filter("^enum:", 0, 0, 0).await.map_err(|e| Failure::error(e.to_string()))?;
    let mut rows: Vec<(E164, u32, Value)> = entries
        .into_iter()
        .filter(|e| e.is_live())
        .filter_map(|e| {
            let (number, n) = parse_enumer_name(&e.name)?;
            let rec = parse_enumer_value(&e.value.to_string_lossy());
            let v = json!({
                "name": e.name,
                "number": number.to_string(),
                "expires_in": e.expires_in,
                "signed_by": rec.signatures.iter().map(|s| s.verifier.clone()).collect::<Vec<_>>(),
                "e2u": rec.naptrs.iter().map(|l| format!("{}={}|{}|{}", l.service, l.order, l.preference, l.regexp)).collect::<Vec<_>>(),
            });
            Some((number, n, v))
        })
        .collect();
    rows.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(&y.1)));
    let total = rows.len();
    let page: Vec<Value> = rows.into_iter().skip(a.offset).take(a.limit).map(|r| r.2).collect();
    if out.json {
        out.json_value(&json!({"total": total, "offset": a.offset, "records": page}));
    } else {
        for r in &page {
            let signed = r["signed_by"].as_array().map_or(0, Vec::len) > 0;
            println!(
                "{:<24} {:<16} expires in {:>7} blocks  {}",
                r["name"].as_str().unwrap_or(""),
                r["number"].as_str().unwrap_or(""),
                r["expires_in"],
                if signed { "signed" } else { "unsigned" }
            );
        }
        eprintln!("{} of {total} record(s)", page.len());
    }
    Ok(())
}
