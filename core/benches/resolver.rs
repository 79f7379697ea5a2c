//! Cost of a cache hit: what a SIP worker pays per call once a number is cached.
//! Goal (issue 2): under 1 µs. Run: cargo bench -p ness-core --bench resolver

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use ness_core::enumer::{E164, NameSource, Resolver, ResolverConfig, TrustPolicy};
use ness_core::nvs::{NameEntry, NameValue, NvsError};

struct OneRecord;

impl NameSource for OneRecord {
    async fn name_show(&self, name: &str) -> Result<Option<NameEntry>, NvsError> {
        Ok((name.ends_with(":0")).then(|| NameEntry {
            name: name.to_owned(),
            value: NameValue::from("E2U+sip=100|10|!^\\+(.*)$!sip:\\1@pbx.example.org!\nE2U+sip=200|10|!^.*$!sip:b@c!"),
            txid: String::new(),
            address: String::new(),
            vout: 0,
            expires_in: 100,
            expires_at: 200,
            time: 0,
            expired: false,
            deleted: false,
        }))
    }
}

/// Poll a future once; a cache hit completes without waiting.
fn poll_once<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("not a cache hit"),
    }
}

fn bench(c: &mut Criterion) {
    let resolver = Arc::new(Resolver::new(OneRecord, ResolverConfig {
        trust: TrustPolicy { verifiers: vec![], require_signature: false },
        ..Default::default()
    }));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Fill the cache with 10 000 numbers, as a busy PBX would have.
    rt.block_on(async {
        for i in 0..10_000u64 {
            let n = E164::parse(&format!("+1555{i:07}")).unwrap();
            resolver.lookup(&n).await.unwrap();
        }
    });
    let number = E164::parse("+15550001234").unwrap();
    assert!(resolver.cached(&number).is_some());

    c.bench_function("cache hit: lookup(E164)", |b| {
        b.iter(|| poll_once(resolver.lookup(std::hint::black_box(&number))).unwrap())
    });
    c.bench_function("cache hit: parse \"+1 555 000 1234\" + lookup", |b| {
        b.iter(|| {
            let n = E164::parse(std::hint::black_box("+1 555 000 1234")).unwrap();
            poll_once(resolver.lookup(&n)).unwrap()
        })
    });
    c.bench_function("cache hit: cached(E164)", |b| b.iter(|| resolver.cached(std::hint::black_box(&number)).unwrap()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
