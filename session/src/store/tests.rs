//! The same test bodies run against both stores: memory under paused tokio time, Redis (a
//! real one at `REDIS_URL`, default `redis://127.0.0.1:6379`, under a unique key prefix).
//! Without a Redis the Redis variants fail and say how to get one.

use std::time::Duration;

use mcpk_kernel::{CommittedState, StateDelta};
use tokio::time::Instant;

use super::*;
use crate::key::KeyError;

const T0_MS: u64 = 1_700_000_000_000;

fn key(name: &str) -> SessionKey {
    SessionKey::named("acme", name).unwrap()
}

fn meta(last_used_ms: u64) -> SessionMeta {
    SessionMeta {
        created_ms: T0_MS,
        last_used_ms,
        ..SessionMeta::default()
    }
}

fn set(k: &str, v: &str) -> (String, Option<String>) {
    (serde_json::to_string(k).unwrap(), Some(v.to_owned()))
}

fn del(k: &str) -> (String, Option<String>) {
    (serde_json::to_string(k).unwrap(), None)
}

fn changes(changes: Vec<(String, Option<String>)>) -> StateDelta {
    StateDelta {
        changes,
        ..StateDelta::default()
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

async fn redis_store(mut config: StoreConfig) -> Store {
    config.key_prefix = format!("mcpk-test-{}:", uuid::Uuid::new_v4());
    redis_store_at(config).await
}

/// A store on the test Redis with `config.key_prefix` as given (a second replica shares it).
async fn redis_store_at(config: StoreConfig) -> Store {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    match Store::redis(&url, config).await {
        Ok(store) => store,
        Err(e) => panic!(
            "no Redis answers at REDIS_URL={url} ({e}): run scripts/test.sh, which finds or \
             starts one, or start redis-server and set REDIS_URL"
        ),
    }
}

/// Deletes the test's keys (a SCAN is fine in a test; the store itself never scans).
async fn cleanup(store: &Store) {
    let Store::Redis(redis) = store else { return };
    let mut con = redis.con.clone();
    let pattern = format!("{}*", redis.config.key_prefix);
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let _: u64 = ::redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut con)
                .await
                .expect("DEL");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

impl Store {
    async fn expire_snapshot_now(&self, key: &SessionKey) {
        match self {
            Store::Memory(s) => s.expire_snapshot_now(key),
            Store::Redis(s) => s.expire_snapshot_now(key).await,
        }
    }

    async fn expire_lease_now(&self, key: &SessionKey) {
        match self {
            Store::Memory(s) => s.expire_lease_now(key),
            Store::Redis(s) => s.expire_lease_now(key).await,
        }
    }

    async fn ttls(&self, key: &SessionKey) -> (Option<Duration>, Option<Duration>) {
        match self {
            Store::Memory(s) => s.ttls(key),
            Store::Redis(s) => s.ttls(key).await,
        }
    }

    /// As if `by` had passed for the session's snapshot and tombstone.
    async fn age(&self, key: &SessionKey, by: Duration) {
        match self {
            Store::Memory(_) => tokio::time::advance(by).await,
            Store::Redis(s) => s.age(key, by).await,
        }
    }

    async fn found(&self, key: &SessionKey) -> Snapshot {
        match self.load(key).await.unwrap() {
            Lookup::Found(snapshot) => snapshot,
            other => panic!("{key}: expected a snapshot, got {other:?}"),
        }
    }
}

/// Runs one `async fn(&Store)` body against both stores.
macro_rules! both {
    ($body:ident) => {
        both!($body, StoreConfig::default());
    };
    ($body:ident, $config:expr) => {
        mod $body {
            use super::*;

            #[tokio::test(start_paused = true)]
            async fn memory() {
                let store = Store::memory($config);
                super::$body(&store).await;
            }

            #[tokio::test]
            async fn redis() {
                let store = redis_store($config).await;
                super::$body(&store).await;
                cleanup(&store).await;
            }
        }
    };
}

/// Commits `delta` to the store and to an oracle state, and checks they agree, key order
/// included.
async fn commit_and_compare(
    store: &Store,
    k: &SessionKey,
    lease: &Lease,
    oracle: &mut CommittedState,
    delta: StateDelta,
    generation: u64,
) {
    oracle.apply(delta.clone());
    store
        .commit(k, lease, &delta, &meta(T0_MS + generation))
        .await
        .unwrap();
    let snapshot = store.found(k).await;
    assert_eq!(snapshot.format, SNAPSHOT_FORMAT);
    assert_eq!(snapshot.state.to_json(), oracle.to_json());
    assert_eq!(snapshot.state, *oracle);
    let expected = SessionMeta {
        created_ms: T0_MS,
        last_used_ms: T0_MS + generation,
        state_bytes: oracle.json_bytes() as u64,
        generation,
    };
    assert_eq!(snapshot.meta, expected);
}

async fn state_round_trip(store: &Store) {
    let k = key("round-trip");
    let lease = store.acquire(&k, soon()).await.unwrap();
    assert_eq!(lease.generation, 0);
    let mut oracle = CommittedState::new();
    let lone = r#""\ud800""#.to_owned(); // a key with a lone surrogate, as JSON.stringify writes it
    let first = StateDelta {
        changes: vec![
            set("b", "1"),
            set("a", r#"{"x":[1,2,{"y":"é\n"}]}"#),
            (lone.clone(), Some(r#""\udfff tail""#.to_owned())),
            set("z", "null"),
        ],
        ..StateDelta::default()
    };
    commit_and_compare(store, &k, &lease, &mut oracle, first, 1).await;
    // One key changed in place, one deleted, one added at the end.
    let second = changes(vec![set("a", "2"), del("b"), set("c", "[]")]);
    commit_and_compare(store, &k, &lease, &mut oracle, second, 2).await;
    // A key deleted and added again moves to the end: the worker sends the order.
    let third = StateDelta {
        changes: vec![set("a", "3")],
        order: Some(vec![
            lone.clone(),
            r#""z""#.into(),
            r#""c""#.into(),
            r#""a""#.into(),
        ]),
        replace: false,
    };
    commit_and_compare(store, &k, &lease, &mut oracle, third, 3).await;
    // An order that leaves keys out: they keep their values, after it, in their old order.
    let partial = StateDelta {
        changes: vec![set("n", "1")],
        order: Some(vec![r#""a""#.into(), r#""missing""#.into()]),
        replace: false,
    };
    commit_and_compare(store, &k, &lease, &mut oracle, partial, 4).await;
    // Setting and deleting the same key within one delta.
    let churn = changes(vec![set("t", "1"), set("t", "22"), del("t"), set("t", "3")]);
    commit_and_compare(store, &k, &lease, &mut oracle, churn, 5).await;
    // `mcp.state = {...}` replaces everything.
    let replace = StateDelta {
        replace: true,
        changes: vec![set("only", r#""one""#)],
        order: None,
    };
    commit_and_compare(store, &k, &lease, &mut oracle, replace, 6).await;
    // An empty delta still counts as a commit.
    commit_and_compare(store, &k, &lease, &mut oracle, StateDelta::default(), 7).await;
    store.release(&k, &lease).await.unwrap();
    let again = store.acquire(&k, soon()).await.unwrap();
    assert_eq!(again.generation, 7);
    assert!(again.token > lease.token);
}
both!(state_round_trip);

async fn touch_writes_meta_only(store: &Store) {
    let k = key("touched");
    let lease = store.acquire(&k, soon()).await.unwrap();
    store.touch(&k, &lease, &meta(T0_MS + 5)).await.unwrap();
    let touched = store.found(&k).await.meta;
    assert_eq!(
        touched,
        SessionMeta {
            created_ms: T0_MS,
            last_used_ms: T0_MS + 5,
            state_bytes: 2,
            generation: 0
        }
    );
    let snapshot = store.found(&k).await;
    assert!(snapshot.state.is_empty());
    assert_eq!(snapshot.meta, touched);
    store
        .commit(&k, &lease, &changes(vec![set("a", "1")]), &meta(T0_MS + 6))
        .await
        .unwrap();
    let mut later = meta(T0_MS + 9);
    later.created_ms = 1; // ignored: the first commit's stays
    store.touch(&k, &lease, &later).await.unwrap();
    let touched = store.found(&k).await.meta;
    assert_eq!((touched.generation, touched.state_bytes), (1, 7));
    assert_eq!(
        (touched.created_ms, touched.last_used_ms),
        (T0_MS, T0_MS + 9)
    );
    assert_eq!(store.found(&k).await.state.to_json(), r#"{"a":1}"#);
}
both!(touch_writes_meta_only);

async fn expired_differs_from_not_found(store: &Store) {
    let k = key("ephemeral");
    assert_eq!(store.load(&k).await.unwrap(), Lookup::NotFound);
    let lease = store.acquire(&k, soon()).await.unwrap();
    store
        .commit(&k, &lease, &changes(vec![set("a", "1")]), &meta(T0_MS))
        .await
        .unwrap();
    let (snap_ttl, tomb_ttl) = store.ttls(&k).await;
    let config = store.config();
    let near = |left: Option<Duration>, full: Duration| {
        let left = left.expect("a TTL is set");
        assert!(
            left <= full && left + Duration::from_secs(60) > full,
            "{left:?} vs {full:?}"
        );
    };
    near(snap_ttl, config.retention);
    near(tomb_ttl, config.effective_tombstone());
    assert!(config.effective_tombstone() >= config.retention * 2);

    store.expire_snapshot_now(&k).await;
    assert_eq!(store.load(&k).await.unwrap(), Lookup::Expired);
    assert!(store.list("acme").await.unwrap().is_empty());
    store.forget_tombstone(&k).await.unwrap();
    assert_eq!(store.load(&k).await.unwrap(), Lookup::NotFound);
}
both!(expired_differs_from_not_found);

async fn close_removes_everything(store: &Store) {
    let k = key("closing");
    let lease = store.acquire(&k, soon()).await.unwrap();
    store
        .commit(&k, &lease, &changes(vec![set("a", "1")]), &meta(T0_MS))
        .await
        .unwrap();
    assert!(store.delete(&k).await.unwrap());
    assert_eq!(store.load(&k).await.unwrap(), Lookup::NotFound);
    assert!(!store.delete(&k).await.unwrap());
    assert!(store.list("acme").await.unwrap().is_empty());
    // The holder of a closed session's lease cannot bring it back.
    let err = store
        .commit(&k, &lease, &changes(vec![set("a", "2")]), &meta(T0_MS))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    assert_eq!(store.load(&k).await.unwrap(), Lookup::NotFound);
    // And the lease is free for the next user.
    store.acquire(&k, Instant::now()).await.unwrap();
}
both!(close_removes_everything);

async fn a_stale_lease_is_fenced(store: &Store) {
    let k = key("contended");
    let a = store.acquire(&k, soon()).await.unwrap();
    store
        .commit(&k, &a, &changes(vec![set("x", "1")]), &meta(T0_MS))
        .await
        .unwrap();
    // A stalls past its lease; B takes the session over.
    store.expire_lease_now(&k).await;
    let b = store.acquire(&k, soon()).await.unwrap();
    assert!(b.token > a.token);
    assert_eq!(b.generation, 1);

    let err = store
        .commit(&k, &a, &changes(vec![set("x", "2")]), &meta(T0_MS + 1))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::Fenced {
            session: k.clone(),
            token: a.token
        }
    );
    assert!(err.to_string().contains("acme/contended"), "{err}");
    let snapshot = store.found(&k).await;
    assert_eq!(snapshot.state.to_json(), r#"{"x":1}"#);
    assert_eq!(snapshot.meta.generation, 1);
    assert!(matches!(
        store.touch(&k, &a, &meta(T0_MS + 1)).await,
        Err(StoreError::Fenced { .. })
    ));
    assert!(matches!(
        store.renew(&k, &a).await,
        Err(StoreError::Fenced { .. })
    ));
    // A's release does not release B's lease.
    store.release(&k, &a).await.unwrap();
    assert!(matches!(
        store.acquire(&k, Instant::now()).await,
        Err(StoreError::Busy { .. })
    ));
    store.renew(&k, &b).await.unwrap();
    store
        .commit(&k, &b, &changes(vec![set("x", "3")]), &meta(T0_MS + 2))
        .await
        .unwrap();
    assert_eq!(store.found(&k).await.meta.generation, 2);
    assert_eq!(store.found(&k).await.state.to_json(), r#"{"x":3}"#);
}
both!(a_stale_lease_is_fenced);

async fn busy_at_the_deadline_then_free_after_release(store: &Store) {
    let k = key("busy");
    let a = store.acquire(&k, soon()).await.unwrap();
    let start = Instant::now();
    let deadline = start + Duration::from_millis(50);
    let err = store.acquire(&k, deadline).await.unwrap_err();
    assert!(Instant::now() >= deadline);
    match &err {
        StoreError::Busy { session, waited } => {
            assert_eq!(session, &k);
            assert!(
                *waited > Duration::ZERO && *waited <= start.elapsed(),
                "{waited:?}"
            );
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(err.to_string().contains("acme/busy"), "{err}");
    // A waiter gets the lease once the holder releases it.
    let (b, ()) = tokio::join!(store.acquire(&k, soon()), async {
        store.release(&k, &a).await.unwrap();
    });
    let b = b.unwrap();
    assert!(b.token > a.token);
}
both!(busy_at_the_deadline_then_free_after_release);

fn capped(max_snapshot_bytes: usize) -> StoreConfig {
    StoreConfig {
        max_snapshot_bytes,
        ..StoreConfig::default()
    }
}

/// A JSON string value that makes `{"k":<value>}` exactly `total` bytes.
fn value_for_total(total: usize) -> String {
    format!("\"{}\"", "x".repeat(total - 6 - 2))
}

async fn too_large_at_the_cap(store: &Store) {
    let k = key("big");
    let lease = store.acquire(&k, soon()).await.unwrap();
    let at_cap = changes(vec![set("k", &value_for_total(100))]);
    store
        .commit(&k, &lease, &at_cap, &meta(T0_MS))
        .await
        .unwrap();
    assert_eq!(store.found(&k).await.meta.state_bytes, 100);
    // Replacing the key with another value of the same size stays at the cap.
    let same = changes(vec![set("k", &value_for_total(100).replace('x', "y"))]);
    store.commit(&k, &lease, &same, &meta(T0_MS)).await.unwrap();
    let over = changes(vec![set("k", &value_for_total(101))]);
    let err = store
        .commit(&k, &lease, &over, &meta(T0_MS))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::TooLarge {
            session: k.clone(),
            bytes: 101,
            max_snapshot_bytes: 100
        }
    );
    let message = err.to_string();
    assert!(
        message.contains("101") && message.contains("max_snapshot_bytes=100"),
        "{message}"
    );
    // Nothing was written.
    let snapshot = store.found(&k).await;
    assert_eq!(snapshot.meta.generation, 2);
    assert_eq!(snapshot.state.json_bytes(), 100);
    assert!(snapshot.state.to_json().contains('y'));
    // A second key tips it over as well; deleting the first in the same delta does not.
    let grow = changes(vec![set("m", "1")]);
    assert!(matches!(
        store.commit(&k, &lease, &grow, &meta(T0_MS)).await,
        Err(StoreError::TooLarge { bytes: 106, .. })
    ));
    let swap = changes(vec![del("k"), set("m", "1")]);
    store.commit(&k, &lease, &swap, &meta(T0_MS)).await.unwrap();
    assert_eq!(store.found(&k).await.meta.state_bytes, 7);
}
both!(too_large_at_the_cap, capped(100));

async fn list_by_last_use_per_tenant(store: &Store) {
    let mut leases = Vec::new();
    for (name, tenant, used) in [("s1", "acme", 1), ("s2", "acme", 2), ("s1", "other", 3)] {
        let k = SessionKey::named(tenant, name).unwrap();
        let lease = store.acquire(&k, soon()).await.unwrap();
        store
            .commit(
                &k,
                &lease,
                &changes(vec![set("v", "1")]),
                &meta(T0_MS + used),
            )
            .await
            .unwrap();
        leases.push((k, lease));
    }
    let names = |list: Vec<(String, SessionMeta)>| -> Vec<String> {
        list.into_iter().map(|(n, _)| n).collect()
    };
    assert_eq!(names(store.list("acme").await.unwrap()), ["s2", "s1"]);
    let (k1, l1) = &leases[0];
    store.touch(k1, l1, &meta(T0_MS + 10)).await.unwrap();
    let list = store.list("acme").await.unwrap();
    assert_eq!(list[0].0, "s1");
    assert_eq!(
        list[0].1,
        SessionMeta {
            created_ms: T0_MS,
            last_used_ms: T0_MS + 10,
            state_bytes: 7,
            generation: 1
        }
    );
    assert_eq!(names(store.list("other").await.unwrap()), ["s1"]);
    assert!(store.list("nobody").await.unwrap().is_empty());
    // An expired snapshot leaves the list.
    store.expire_snapshot_now(k1).await;
    assert_eq!(names(store.list("acme").await.unwrap()), ["s2"]);
}
both!(list_by_last_use_per_tenant);

fn skill(name: &str, source: &str, created_ms: u64) -> StoredSkill {
    StoredSkill {
        revision: 99, // set by the store
        created_ms,
        name: name.to_owned(),
        description: format!("does {name}"),
        source: source.to_owned(),
        params: vec!["x".into(), "...rest".into()],
        tools: vec![ToolSchema {
            server: "fs".into(),
            tool: "read_file".into(),
            schema_sha256: Some("ab".repeat(32)),
        }],
        updated_ms: created_ms,
    }
}

async fn skills_library(store: &Store) {
    assert_eq!(store.skills_version("acme").await.unwrap(), 0);
    assert_eq!(store.skill_list("acme").await.unwrap(), (0, vec![]));
    let source = "async (x, ...rest) => `\"é\" ${x}` + '\\n' + \"{\\\"revision\\\":1,\"";
    assert_eq!(
        store
            .skill_save("acme", skill("beta", source, T0_MS))
            .await
            .unwrap(),
        1
    );
    let got = store.skill_get("acme", "beta").await.unwrap().unwrap();
    assert_eq!(
        got,
        StoredSkill {
            revision: 1,
            ..skill("beta", source, T0_MS)
        }
    );
    // A second save: revision 2, the first save's created_ms kept.
    let mut second = skill("beta", "() => 2", T0_MS + 50);
    second.description = "v2".into();
    assert_eq!(store.skill_save("acme", second).await.unwrap(), 2);
    let got = store.skill_get("acme", "beta").await.unwrap().unwrap();
    assert_eq!(
        (got.revision, got.created_ms, got.updated_ms),
        (2, T0_MS, T0_MS + 50)
    );
    assert_eq!(
        (got.source.as_str(), got.description.as_str()),
        ("() => 2", "v2")
    );
    assert_eq!(
        store
            .skill_save("acme", skill("alpha", "x => x", T0_MS))
            .await
            .unwrap(),
        3
    );
    let (version, skills) = store.skill_list("acme").await.unwrap();
    assert_eq!(version, 3);
    let names: Vec<_> = skills
        .iter()
        .map(|s| (s.name.as_str(), s.revision))
        .collect();
    assert_eq!(names, [("alpha", 1), ("beta", 2)]);
    // Other tenants see none of it.
    assert_eq!(store.skill_list("other").await.unwrap(), (0, vec![]));
    assert_eq!(store.skill_get("other", "alpha").await.unwrap(), None);
    assert_eq!(store.skill_delete("other", "alpha").await.unwrap(), None);
    // Delete bumps the version only when the skill existed.
    assert_eq!(store.skill_delete("acme", "beta").await.unwrap(), Some(4));
    assert_eq!(store.skill_delete("acme", "beta").await.unwrap(), None);
    assert_eq!(store.skills_version("acme").await.unwrap(), 4);
    assert_eq!(store.skill_get("acme", "beta").await.unwrap(), None);
    // A deleted then re-saved skill starts again at revision 1.
    store
        .skill_save("acme", skill("beta", "() => 3", T0_MS + 99))
        .await
        .unwrap();
    let got = store.skill_get("acme", "beta").await.unwrap().unwrap();
    assert_eq!((got.revision, got.created_ms), (1, T0_MS + 99));
}
both!(skills_library);

fn two_skills() -> StoreConfig {
    StoreConfig {
        max_skills_per_tenant: 2,
        ..StoreConfig::default()
    }
}

async fn skills_at_their_limit(store: &Store) {
    store
        .skill_save("acme", skill("a", "() => 1", T0_MS))
        .await
        .unwrap();
    store
        .skill_save("acme", skill("b", "() => 1", T0_MS))
        .await
        .unwrap();
    let err = store
        .skill_save("acme", skill("c", "() => 1", T0_MS))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::TooManySkills {
            tenant: "acme".into(),
            max_skills_per_tenant: 2
        }
    );
    assert!(err.to_string().contains("max_skills_per_tenant=2"), "{err}");
    assert_eq!(store.skills_version("acme").await.unwrap(), 2);
    // Replacing one is not adding one.
    assert_eq!(
        store
            .skill_save("acme", skill("a", "() => 2", T0_MS))
            .await
            .unwrap(),
        3
    );
    store
        .skill_save("other", skill("c", "() => 1", T0_MS))
        .await
        .unwrap();
}
both!(skills_at_their_limit, two_skills());

// Memory only: retention and tombstones run on tokio time.

#[tokio::test(start_paused = true)]
async fn memory_retention_runs_on_tokio_time() {
    let store = Store::memory(StoreConfig::default());
    let config = store.config().clone();
    let k = key("aging");
    let lease = store.acquire(&k, soon()).await.unwrap();
    store
        .commit(&k, &lease, &changes(vec![set("a", "1")]), &meta(T0_MS))
        .await
        .unwrap();
    store.release(&k, &lease).await.unwrap();
    // A touch six days later keeps it seven more days.
    tokio::time::advance(Duration::from_secs(6 * 24 * 3600)).await;
    let lease = store.acquire(&k, soon()).await.unwrap();
    store.touch(&k, &lease, &meta(T0_MS + 1)).await.unwrap();
    store.release(&k, &lease).await.unwrap();
    tokio::time::advance(Duration::from_secs(6 * 24 * 3600)).await;
    assert!(matches!(store.load(&k).await.unwrap(), Lookup::Found(_)));
    tokio::time::advance(config.retention - Duration::from_secs(6 * 24 * 3600)).await;
    assert_eq!(store.load(&k).await.unwrap(), Lookup::Expired);
    tokio::time::advance(config.effective_tombstone() - config.retention).await;
    assert_eq!(store.load(&k).await.unwrap(), Lookup::NotFound);
}

#[tokio::test(start_paused = true)]
async fn memory_store_is_bounded_at_max_sessions_stored() {
    let store = Store::memory(StoreConfig {
        max_sessions_stored: 2,
        ..StoreConfig::default()
    });
    let retention = store.config().retention;
    for name in ["a", "b"] {
        let k = key(name);
        let lease = store.acquire(&k, soon()).await.unwrap();
        store.touch(&k, &lease, &meta(T0_MS)).await.unwrap();
    }
    let k = key("c");
    let lease = store.acquire(&k, soon()).await.unwrap();
    let err = store.touch(&k, &lease, &meta(T0_MS)).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::Full {
            max_sessions_stored: 2
        }
    );
    assert!(err.to_string().contains("max_sessions_stored=2"), "{err}");
    // An existing session still commits; once the others expire there is room again.
    let a = key("a");
    store.expire_lease_now(&a).await;
    let lease_a = store.acquire(&a, soon()).await.unwrap();
    store
        .commit(&a, &lease_a, &changes(vec![set("x", "1")]), &meta(T0_MS))
        .await
        .unwrap();
    tokio::time::advance(retention).await;
    let lease = store.acquire(&k, soon()).await.unwrap();
    store.touch(&k, &lease, &meta(T0_MS)).await.unwrap();
    // Tombstones are bounded too: the one expiring first made room for c's.
    let Store::Memory(memory) = &store else {
        unreachable!()
    };
    assert_eq!(memory.tombstone_count(), 2);
}

#[tokio::test]
async fn redis_footprint_of_a_hibernated_session() {
    let store = redis_store(StoreConfig::default()).await;
    let k = key("footprint");
    let lease = store.acquire(&k, soon()).await.unwrap();
    let value = format!("\"{}\"", "x".repeat(10_000));
    store
        .commit(
            &k,
            &lease,
            &changes(vec![set("a", &value), set("b", "[1,2,3]")]),
            &meta(T0_MS),
        )
        .await
        .unwrap();
    store.release(&k, &lease).await.unwrap();
    let state_bytes = store.found(&k).await.meta.state_bytes;
    let bytes = store.footprint(&k).await.unwrap().expect("stored");
    assert!(
        bytes <= state_bytes + 2048,
        "hibernated session uses {bytes} bytes for {state_bytes} bytes of state"
    );
    assert_eq!(store.footprint(&key("absent")).await.unwrap(), None);
    cleanup(&store).await;
}

#[tokio::test]
async fn redis_snapshot_of_another_format_is_refused() {
    let store = redis_store(StoreConfig::default()).await;
    let Store::Redis(redis) = &store else {
        unreachable!()
    };
    let k = key("future");
    let lease = store.acquire(&k, soon()).await.unwrap();
    store.touch(&k, &lease, &meta(T0_MS)).await.unwrap();
    assert!(
        redis
            .raw_snapshot(&k)
            .await
            .contains(&("format".into(), "1".into()))
    );
    let _: i64 = ::redis::cmd("HSET")
        .arg(redis.session_key("snap", &k))
        .arg("format")
        .arg(2)
        .query_async(&mut redis.con())
        .await
        .unwrap();
    let err = store.load(&k).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Format { what, detail }
            if what == "acme/future" && detail.contains("format 2")),
        "{err}"
    );
    cleanup(&store).await;
}

async fn the_lease_serialises_writers(store: &Store) {
    const WRITERS: u64 = 12;
    let k = key("counter");
    let bump = || async {
        let lease = store.acquire(&k, soon()).await.unwrap();
        let n: u64 = match store.load(&k).await.unwrap() {
            Lookup::Found(s) => s.state.get(r#""n""#).unwrap().parse().unwrap(),
            _ => 0,
        };
        // Let the other writers run between the read and the write.
        tokio::task::yield_now().await;
        store
            .commit(
                &k,
                &lease,
                &changes(vec![set("n", &(n + 1).to_string())]),
                &meta(T0_MS),
            )
            .await
            .unwrap();
        store.release(&k, &lease).await.unwrap();
    };
    futures::future::join_all((0..WRITERS).map(|_| bump())).await;
    let snapshot = store.found(&k).await;
    assert_eq!(snapshot.state.to_json(), format!(r#"{{"n":{WRITERS}}}"#));
    assert_eq!(snapshot.meta.generation, WRITERS);
}
both!(the_lease_serialises_writers);

#[tokio::test]
async fn redis_two_replicas_hand_a_session_over() {
    let one = redis_store(StoreConfig::default()).await;
    let two = redis_store_at(one.config().clone()).await;
    let k = key("moving");
    let lease = one.acquire(&k, soon()).await.unwrap();
    let busy = two
        .acquire(&k, Instant::now() + Duration::from_millis(20))
        .await;
    assert!(matches!(busy, Err(StoreError::Busy { .. })), "{busy:?}");
    one.commit(
        &k,
        &lease,
        &changes(vec![set("from", r#""one""#)]),
        &meta(T0_MS),
    )
    .await
    .unwrap();
    let (taken, ()) = tokio::join!(two.acquire(&k, soon()), async {
        one.release(&k, &lease).await.unwrap();
    });
    let taken = taken.unwrap();
    assert_eq!(taken.generation, 1);
    assert!(taken.token > lease.token);
    let snapshot = two.found(&k).await;
    assert_eq!(snapshot.state.to_json(), r#"{"from":"one"}"#);
    two.commit(
        &k,
        &taken,
        &changes(vec![set("from", r#""two""#)]),
        &meta(T0_MS + 1),
    )
    .await
    .unwrap();
    assert_eq!(one.found(&k).await.state.to_json(), r#"{"from":"two"}"#);
    assert_eq!(one.list("acme").await.unwrap().len(), 1);
    cleanup(&one).await;
}

#[tokio::test]
async fn redis_that_does_not_answer_is_a_backend_error() {
    let err = Store::redis("redis://127.0.0.1:1", StoreConfig::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.starts_with("redis: ")),
        "{err}"
    );
    let err = Store::redis("not a url", StoreConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
}

async fn a_hand_built_tenant_with_a_colon_is_refused(store: &Store) {
    // "a:b"/"c" and "a"/"b:c" would share the Redis key `…:snap:a:b:c`.
    let k = SessionKey {
        tenant: "a:b".into(),
        name: "c".into(),
    };
    let err = store.load(&k).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::Key(KeyError::Tenant {
            tenant: "a:b".into()
        })
    );
    assert!(err.to_string().contains("invalid tenant \"a:b\""), "{err}");
    assert!(matches!(
        store.acquire(&k, soon()).await,
        Err(StoreError::Key(_))
    ));
    assert!(matches!(
        store.skills_version("a:b").await,
        Err(StoreError::Key(_))
    ));
}
both!(a_hand_built_tenant_with_a_colon_is_refused);

async fn touch_and_commit_refresh_retention(store: &Store) {
    let k = key("kept");
    let config = store.config().clone();
    let day = Duration::from_secs(24 * 3600);
    let near = |left: Option<Duration>, full: Duration| {
        let left = left.expect("a TTL is set");
        left <= full && left + Duration::from_secs(60) > full
    };
    let lease = store.acquire(&k, soon()).await.unwrap();
    store
        .commit(&k, &lease, &changes(vec![set("a", "1")]), &meta(T0_MS))
        .await
        .unwrap();
    // Released, so that the lease (shorter than a day) does not matter to aging.
    store.release(&k, &lease).await.unwrap();
    store.age(&k, day).await;
    let (snap, tomb) = store.ttls(&k).await;
    assert!(near(snap, config.retention - day), "{snap:?}");
    assert!(near(tomb, config.effective_tombstone() - day), "{tomb:?}");
    let lease = store.acquire(&k, soon()).await.unwrap();
    store.touch(&k, &lease, &meta(T0_MS + 1)).await.unwrap();
    let (snap, tomb) = store.ttls(&k).await;
    assert!(near(snap, config.retention), "{snap:?}");
    assert!(near(tomb, config.effective_tombstone()), "{tomb:?}");
    store.release(&k, &lease).await.unwrap();
    store.age(&k, day).await;
    let lease = store.acquire(&k, soon()).await.unwrap();
    store
        .commit(&k, &lease, &changes(vec![set("a", "2")]), &meta(T0_MS + 2))
        .await
        .unwrap();
    let (snap, tomb) = store.ttls(&k).await;
    assert!(near(snap, config.retention), "{snap:?}");
    assert!(near(tomb, config.effective_tombstone()), "{tomb:?}");
}
both!(touch_and_commit_refresh_retention);

#[test]
fn the_tombstone_outlives_retention_twice_over() {
    let config = StoreConfig {
        retention: Duration::from_secs(10),
        tombstone: Duration::from_secs(5),
        ..StoreConfig::default()
    };
    assert_eq!(config.effective_tombstone(), Duration::from_secs(20));
    let defaults = StoreConfig::default();
    assert_eq!(defaults.effective_tombstone(), defaults.tombstone);
    assert_eq!(defaults.tombstone, defaults.retention * 2);
}

/// `finish` commits (or touches) and releases in one step; `acquire` reads the skills version.
async fn finish_writes_and_releases(store: &Store) {
    let k = key("finish");
    let lease = store.acquire(&k, soon()).await.unwrap();
    assert_eq!((lease.generation, lease.skills_version), (0, 0));
    store
        .finish(
            &k,
            &lease,
            Some(&changes(vec![set("a", "1")])),
            &meta(T0_MS),
        )
        .await
        .unwrap();
    // Released: another acquire succeeds at once, and sees the new generation.
    store
        .skill_save("acme", skill("s", "() => 1", T0_MS))
        .await
        .unwrap();
    let next = store.acquire(&k, Instant::now()).await.unwrap();
    assert_eq!((next.generation, next.skills_version), (1, 1));
    // A stale lease's finish is fenced: nothing written, and the current lease is kept.
    let fenced = store
        .finish(
            &k,
            &lease,
            Some(&changes(vec![set("a", "2")])),
            &meta(T0_MS + 1),
        )
        .await;
    assert!(
        matches!(fenced, Err(StoreError::Fenced { .. })),
        "{fenced:?}"
    );
    assert!(matches!(
        store.acquire(&k, Instant::now()).await,
        Err(StoreError::Busy { .. })
    ));
    // A touch through finish keeps the state and releases too.
    store
        .finish(&k, &next, None, &meta(T0_MS + 2))
        .await
        .unwrap();
    let snapshot = store.found(&k).await;
    assert_eq!(snapshot.state.to_json(), r#"{"a":1}"#);
    assert_eq!(snapshot.meta.last_used_ms, T0_MS + 2);
    store.acquire(&k, Instant::now()).await.unwrap();
}
both!(finish_writes_and_releases);
