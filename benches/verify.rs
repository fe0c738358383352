//! In-process key verification with 1,000,000 keys loaded (`cargo bench --bench verify`).
//!
//! Prints the memory the cache takes per key (resident-set growth while loading), then
//! measures `KeyCache::verify` for a valid key, a wrong secret and an unknown id. Keys with
//! tags, permissions, models and CIDRs, so the records are realistic.
//! `VERIFY_BENCH_KEYS` changes the number of keys.

#![allow(unsafe_code, reason = "a counting global allocator, benchmark only")]
#![allow(missing_docs, reason = "criterion macros generate undocumented items")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use time::OffsetDateTime;
use tokenhub::auth::hashing::KeyHasher;
use tokenhub::auth::key_format;
use tokenhub::cache::{KeyCache, VerifyCode, VerifyInput};
use tokenhub_aggregates::api_key::{KeyRole, KeySettings, KeyStatus};
use tokenhub_aggregates::tenant::TenantStatus;
use tokenhub_projections::api_keys::KeyRecord;

/// Counts live heap bytes, so memory per key is measured exactly (RSS also counts allocator
/// slack and freed growth buffers).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn load(hasher: &KeyHasher, n: usize) -> (KeyCache, Vec<String>) {
    let cache = KeyCache::default();
    let now = OffsetDateTime::now_utc();
    let mut sample = Vec::with_capacity(1000);
    for t in 0..1000 {
        cache.put_tenant(format!("ten_bench{t:015}"), TenantStatus::Active);
    }
    for i in 0..n {
        let key = key_format::generate();
        let settings = KeySettings {
            allowed_ips: vec!["10.0.0.0/8".into()],
            allowed_models: vec!["gpt-4o".into(), "claude-sonnet".into()],
            permissions: vec!["chat".into(), "embeddings".into()],
            tags: BTreeMap::from([("customer_id".into(), format!("customer-{i}"))]),
            ..Default::default()
        };
        cache.put_key(KeyRecord {
            public_id: key.public_id.clone(),
            tenant_id: Some(format!("ten_bench{:015}", i % 1000)),
            sub_account_id: None,
            role: KeyRole::Data,
            name: format!("key {i}"),
            status: KeyStatus::Active,
            secret_hash: hasher.hash_hex(&key.full),
            previous_secret_hash: None,
            previous_valid_until: None,
            settings,
            created_at: now,
            updated_at: now,
        });
        if i % (n / 1000).max(1) == 0 && sample.len() < 1000 {
            sample.push(key.full);
        }
    }
    (cache, sample)
}

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("VERIFY_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let hasher = KeyHasher::new(b"bench-pepper-bench-pepper-bench-pepper");
    let (rss_before, heap_before) = (resident_bytes(), LIVE.load(Ordering::Relaxed));
    let (cache, sample) = load(&hasher, n);
    let sample_bytes: usize = sample.iter().map(|s| s.capacity()).sum::<usize>() + sample.capacity() * 24;
    let heap = LIVE.load(Ordering::Relaxed) - heap_before - sample_bytes;
    let rss = resident_bytes() - rss_before;
    eprintln!(
        "loaded {} keys: {} heap bytes per key (live allocations), {} resident bytes per key (RSS growth)",
        cache.len(),
        heap / n,
        rss / n as u64
    );
    let ip = "10.1.2.3".parse().ok();
    let now = OffsetDateTime::now_utc();
    let mut i = 0;
    c.bench_function("verify/valid (1M keys)", |b| {
        b.iter(|| {
            i = (i + 1) % sample.len();
            let input = VerifyInput { key: &sample[i], ip, model: Some("gpt-4o") };
            let verdict = cache.verify(&hasher, black_box(input), now);
            assert_eq!(verdict.code, VerifyCode::Valid);
        })
    });
    let wrong = key_format::generate_for(&sample[0][4..20]).full;
    c.bench_function("verify/wrong secret", |b| {
        b.iter(|| cache.verify(&hasher, black_box(VerifyInput { key: &wrong, ip, model: None }), now).code)
    });
    let unknown = key_format::generate().full;
    c.bench_function("verify/unknown id", |b| {
        b.iter(|| cache.verify(&hasher, black_box(VerifyInput { key: &unknown, ip, model: None }), now).code)
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
