//! Cost of the CPU work in a cache miss, without I/O: what a SIP worker pays on top
//! of the node's round trips the first time it sees a number.
//! Run: cargo bench -p ness-core --bench miss

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ness_core::emercoin::{Address, MessageSignature, Network, PrivateKey};
use ness_core::enumer::{NaptrRegexp, parse_enumer_value};

fn bench(c: &mut Criterion) {
    let key = PrivateKey::generate();
    let address = Address::parse(&key.p2wpkh_address(Network::Regtest).unwrap().to_string()).unwrap();
    let name = "enum:15550001234:0";
    let sig = MessageSignature::sign(&key, name.as_bytes());
    let value = format!("E2U+sip=100|10|!^\\+(.*)$!sip:\\1@pbx.example.org!\nSIG=ver:enum|{}", sig.to_base64());

    c.bench_function("miss: check an ENUMER signature (key recovery)", |b| {
        b.iter(|| assert!(black_box(&sig).verifies(&address, black_box(name.as_bytes()))))
    });
    c.bench_function("miss: parse an ENUMER value", |b| b.iter(|| parse_enumer_value(black_box(&value))));
    c.bench_function("miss: parse and apply a NAPTR regexp (its pattern compiled before)", |b| {
        b.iter(|| {
            let r = NaptrRegexp::parse(black_box("!^\\+(.*)$!sip:\\1@pbx.example.org!")).unwrap();
            r.apply("+15550001234").unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
