//! The cache on Redis Sentinel and Redis Cluster, and over TLS, against servers the tests start:
//! every guarantee of the standalone cache, the failovers and slot moves it must ride out, and
//! the misconfigurations it must name.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use stockpile_application::ports::{Cache, CacheBackend, CacheState, RedisTopology};
use stockpile_infrastructure::{
    FallbackCache, MemoryCache, RedisAddresses, RedisCache, RedisServers, RedisSettings,
};
use stockpile_test_support::{
    wait_until, Certificates, RedisCluster, RedisSentinel, TlsRedisServer, CLUSTER_NODE_TIMEOUT_MS,
};

use super::support::{text, FaultProxy};

const HOUR: Duration = Duration::from_secs(3600);

/// How long an invalidation may take to reach another instance's first tier.
const PROPAGATION: Duration = Duration::from_secs(2);

/// Within how long of a kill the cache must be served by Redis again: the Sentinels call the
/// master down after 1 s, a cluster fails a node over after 2 s; the rest is election.
const FOLLOWS_WITHIN: Duration = Duration::from_secs(15);

fn unique_prefix(what: &str) -> String {
    format!("stockpile-test-{what}-{}:", uuid::Uuid::new_v4())
}

fn addresses(list: &str) -> RedisAddresses {
    list.parse().expect("the test servers' addresses parse")
}

fn sentinel_settings(set: &RedisSentinel, prefix: &str) -> RedisSettings {
    RedisSettings {
        servers: RedisServers::Sentinel {
            sentinels: addresses(&set.sentinels_setting()),
            master: set.master_name().to_owned(),
        },
        key_prefix: prefix.to_owned(),
        ..RedisSettings::default()
    }
}

fn cluster_settings(cluster: &RedisCluster, prefix: &str) -> RedisSettings {
    RedisSettings {
        servers: RedisServers::Cluster {
            seeds: addresses(&cluster.nodes_setting()),
        },
        key_prefix: prefix.to_owned(),
        // A loaded two-core machine runs six nodes here: room for a slow answer.
        command_timeout: Duration::from_millis(500),
        ..RedisSettings::default()
    }
}

fn with_ca(mut settings: RedisSettings, certificates: &Certificates) -> RedisSettings {
    settings.tls = true;
    settings.tls_ca_file = Some(certificates.ca_file());
    settings
}

/// Memory in front of Redis with a first tier that only an invalidation empties in time.
async fn tiered(settings: &RedisSettings) -> FallbackCache {
    let memory = MemoryCache::new(&settings.key_prefix, 1024 * 1024).with_max_ttl(HOUR);
    FallbackCache::start(RedisCache::new(settings), memory).await
}

/// Redis is refused with an error (what the fallback logs) that names `what` is wrong.
async fn assert_refused_naming(settings: &RedisSettings, what: &str) {
    let refused = RedisCache::new(settings)
        .ping()
        .await
        .expect_err("Redis must be refused");
    assert!(
        refused.to_string().to_lowercase().contains(what),
        "the refusal names the {what}: {refused}"
    );
}

async fn serving_redis(cache: &dyn Cache) -> bool {
    cache.status().await.state == CacheState::Serving(CacheBackend::Redis)
}

/// Everything a cache promises, on one topology, through two instances sharing it.
async fn assert_cache_guarantees(settings: &RedisSettings, topology: RedisTopology) {
    let a = tiered(settings).await;
    let b = tiered(settings).await;
    assert!(
        wait_until(PROPAGATION, || serving_redis(&a)).await,
        "{:?}",
        a.status().await
    );
    assert_eq!(a.status().await.topology, Some(topology));

    // Cache-aside across many slots: batches of single-key commands never fail CROSSSLOT.
    let keys: Vec<String> = (0..64).map(|i| format!("stocks:detail:T{i}")).collect();
    for key in &keys {
        a.put(key, Bytes::from(key.clone()), HOUR)
            .await
            .expect("stored");
    }
    let read = b.get_many(&keys).await.expect("answers");
    assert!(
        read.iter()
            .zip(&keys)
            .all(|(value, key)| value.as_deref() == Some(key.as_bytes())),
        "{read:?}"
    );

    // Generations: started once, agreed by both instances, revoked together.
    let generations: Vec<String> = ["gen:market", "gen:stock:AAPL", "gen:stock:MSFT"]
        .map(String::from)
        .to_vec();
    let started = a
        .get_or_put_many(&generations, Bytes::from("one"), HOUR)
        .await
        .expect("answers");
    let agreed = b
        .get_or_put_many(&generations, Bytes::from("two"), HOUR)
        .await
        .expect("answers");
    assert_eq!(started, agreed);
    assert!(agreed
        .iter()
        .all(|token| token.as_deref() == Some(&b"one"[..])));
    assert_eq!(a.delete_many(&generations).await, Ok(3));

    // The lease: one holder across the fleet until it gives it back.
    assert_eq!(a.try_lease("stocks:list:1", HOUR).await, Ok(true));
    assert_eq!(b.try_lease("stocks:list:1", HOUR).await, Ok(false));
    a.release_lease("stocks:list:1").await.expect("released");
    assert_eq!(b.try_lease("stocks:list:1", HOUR).await, Ok(true));
    b.release_lease("stocks:list:1").await.expect("released");

    // An invalidation on one instance has reached the other's first tier by the time it
    // answers: B confirmed it.
    assert_eq!(
        text(&b, "stocks:detail:T0").await.as_deref(),
        Some("stocks:detail:T0")
    );
    assert_eq!(a.delete("stocks:detail:T0").await, Ok(true));
    assert_eq!(
        text(&b, "stocks:detail:T0").await,
        None,
        "the delete on A answered before B's first tier forgot"
    );

    // Patterns and clear reach every key under the prefix, on every primary, and no other.
    let other = RedisCache::new(&RedisSettings {
        key_prefix: format!("other-{}", settings.key_prefix),
        ..settings.clone()
    });
    other
        .put("stocks:detail:T1", Bytes::from("not ours"), HOUR)
        .await
        .expect("stored");
    assert_eq!(a.delete_matching("stocks:detail:T1*").await, Ok(11));
    assert_eq!(
        a.clear().await,
        Ok(52),
        "the other prefix holds no key of ours"
    );
    assert_eq!(
        b.get_many(&keys).await.expect("answers"),
        vec![None; 64],
        "the clear on A answered before B's first tier forgot"
    );
    let faults = a.status().await.faults;
    assert_eq!(
        faults.unconfirmed_invalidations, 0,
        "every invalidation was confirmed by B: {faults:?}"
    );
    assert_eq!(
        text(&other, "stocks:detail:T1").await.as_deref(),
        Some("not ours"),
        "clear reached outside its prefix"
    );
    other.clear().await.expect("cleaned up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cache_guarantee_holds_through_sentinels() {
    let Some(set) = RedisSentinel::start().await else {
        return;
    };
    assert_cache_guarantees(
        &sentinel_settings(&set, &unique_prefix("sentinel")),
        RedisTopology::Sentinel,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cache_guarantee_holds_on_a_cluster() {
    let Some(cluster) = RedisCluster::shared().await else {
        return;
    };
    assert_cache_guarantees(
        &cluster_settings(cluster, &unique_prefix("cluster")),
        RedisTopology::Cluster,
    )
    .await;
}

/// Managed clusters are given by a name (a configuration endpoint, a service's host name) that
/// is none of the names the cluster gives its nodes: invalidations still reach and are
/// confirmed by every instance, and no write takes the instance off Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_seeded_by_another_name_than_its_nodes_confirms_invalidations() {
    let Some(cluster) = RedisCluster::shared().await else {
        return;
    };
    let mut settings = cluster_settings(cluster, &unique_prefix("cluster-named"));
    settings.servers = RedisServers::Cluster {
        seeds: addresses(&cluster.nodes_setting().replace("127.0.0.1", "localhost")),
    };
    let a = tiered(&settings).await;
    let b = tiered(&settings).await;
    for round in 0..3 {
        let key = format!("stocks:detail:N{round}");
        a.put(&key, Bytes::from("old"), HOUR).await.expect("stored");
        assert_eq!(
            text(&b, &key).await.as_deref(),
            Some("old"),
            "B fills its memory"
        );
        assert_eq!(a.delete(&key).await, Ok(true));
        assert_eq!(
            text(&b, &key).await,
            None,
            "round {round}: B still served the older entry"
        );
    }
    let status = a.status().await;
    assert_eq!(status.state, CacheState::Serving(CacheBackend::Redis));
    assert_eq!(status.faults.fallbacks, 0, "{:?}", status.faults);
    assert_eq!(
        status.faults.unconfirmed_invalidations, 0,
        "{:?}",
        status.faults
    );
    a.clear().await.expect("cleaned up");
}

/// Readers and a writer hammering a cache until stopped; counts the calls that failed.
struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(cache: Arc<dyn Cache>, readers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for reader in 0..=readers {
            let (cache, stop, failures) = (cache.clone(), stop.clone(), failures.clone());
            tasks.push(tokio::spawn(async move {
                let mut round = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("stocks:detail:L{}", round % 64);
                    // The last task writes, the others read.
                    let outcome = if reader == readers {
                        cache.put(&key, Bytes::from("loaded"), HOUR).await.map(drop)
                    } else {
                        cache.get(&key).await.map(drop)
                    };
                    if outcome.is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    round += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
        Self {
            stop,
            failures,
            tasks,
        }
    }

    /// How many calls failed since the last look.
    fn take_failures(&self) -> u64 {
        self.failures.swap(0, Ordering::Relaxed)
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a load task panicked");
        }
        self.failures.load(Ordering::Relaxed)
    }
}

/// How long the load goes on once the cache serves from Redis again, with no call failing.
const SETTLED: Duration = Duration::from_millis(500);

/// Waits for `cache` to serve from Redis again, reports the calls that failed while the fault
/// lasted (each one command that its caller answers from the database, as cache-aside does:
/// a slow or failing Redis costs clients no error), then keeps the load going for a moment in
/// which none may fail.
async fn settles_on_redis(cache: &dyn Cache, load: Load, what: &str) {
    assert!(
        wait_until(FOLLOWS_WITHIN, || serving_redis(cache)).await,
        "{what}: the fallback cache did not return to Redis"
    );
    let during = load.take_failures();
    eprintln!("{what}: {during} calls failed while it lasted, each answered from the database");
    tokio::time::sleep(SETTLED).await;
    assert_eq!(
        load.stop().await,
        0,
        "{what}: a call failed once the cache served from Redis again"
    );
}

/// Seconds from `since` until `redis` (no fallback) answers a write and the read of it.
async fn seconds_until_redis_answers(redis: &RedisCache, since: Instant) -> f64 {
    let answered = wait_until(FOLLOWS_WITHIN, || async {
        redis.put("probe", Bytes::from("after"), HOUR).await.is_ok()
            && redis.get("probe").await.ok().flatten().as_deref() == Some(&b"after"[..])
    })
    .await;
    assert!(
        answered,
        "Redis did not serve again within {FOLLOWS_WITHIN:?}"
    );
    since.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sentinel_master_is_followed_by_itself_and_nothing_stale_comes_back() {
    let Some(mut set) = RedisSentinel::start().await else {
        return;
    };
    let settings = sentinel_settings(&set, &unique_prefix("failover"));
    let a: Arc<dyn Cache> = Arc::new(tiered(&settings).await);
    let b = tiered(&settings).await;
    let redis = RedisCache::new(&settings);
    a.put("stocks:detail:OLD", Bytes::from("before"), HOUR)
        .await
        .expect("stored");
    let load = Load::start(a.clone(), 32);

    let killed_at = Instant::now();
    let old = set.kill_master().await;
    let measuring =
        tokio::spawn(async move { seconds_until_redis_answers(&redis, killed_at).await });
    // While Redis is away, a delete on A must not be undone by the entry coming back.
    assert!(
        wait_until(FOLLOWS_WITHIN, || async {
            !serving_redis(a.as_ref()).await
        })
        .await,
        "A never noticed the master was gone"
    );
    assert_eq!(a.delete("stocks:detail:OLD").await.map(drop), Ok(()));
    let new = set
        .wait_for_new_master(old, FOLLOWS_WITHIN)
        .await
        .expect("the Sentinels promote the replica");
    let redis_again = measuring.await.expect("the measurement ran");
    assert!(
        wait_until(FOLLOWS_WITHIN, || serving_redis(a.as_ref())).await,
        "the fallback cache did not return to Redis"
    );
    let fallback_back = killed_at.elapsed().as_secs_f64();
    eprintln!(
        "sentinel failover: master {old} killed, {new} promoted; Redis answered a write and its \
         read again after {redis_again:.2} s; the fallback cache served from Redis again after \
         {fallback_back:.2} s"
    );
    settles_on_redis(a.as_ref(), load, "sentinel failover").await;

    // After the failover: a write on one instance is read on the other, and the entry deleted
    // while Redis was away stays deleted.
    a.put("stocks:detail:NEW", Bytes::from("after"), HOUR)
        .await
        .expect("stored");
    assert_eq!(
        text(&b, "stocks:detail:NEW").await.as_deref(),
        Some("after")
    );
    assert_eq!(text(&b, "stocks:detail:OLD").await, None);
    assert!(wait_until(FOLLOWS_WITHIN, || serving_redis(&b)).await);
    assert_eq!(text(&b, "stocks:detail:OLD").await, None);
    a.clear().await.expect("cleaned up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_with_the_master_alive_is_followed_too() {
    let Some(set) = RedisSentinel::start().await else {
        return;
    };
    let settings = sentinel_settings(&set, &unique_prefix("switchover"));
    let cache: Arc<dyn Cache> = Arc::new(tiered(&settings).await);
    let redis = RedisCache::new(&settings);
    let load = Load::start(cache.clone(), 8);
    // The demoted master stays up: whatever connection still reaches it (its clients killed by
    // the Sentinels, or answering READONLY) must give way to the new master.
    let asked_at = Instant::now();
    let new = set.failover().await;
    let redis_again = seconds_until_redis_answers(&redis, asked_at).await;
    eprintln!(
        "sentinel switchover: {new} promoted; Redis answered a write and its read \
         {redis_again:.2} s after SENTINEL FAILOVER"
    );
    settles_on_redis(cache.as_ref(), load, "sentinel switchover").await;
    assert_eq!(set.master_port().await, Some(new));
    cache.clear().await.expect("cleaned up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_rides_out_a_killed_primary_and_a_reshard_under_load() {
    let Some(mut cluster) = RedisCluster::start(3, 1).await else {
        return;
    };
    let settings = RedisSettings {
        command_timeout: Duration::from_secs(1),
        ..cluster_settings(&cluster, &unique_prefix("cluster-faults"))
    };
    let cache: Arc<dyn Cache> = Arc::new(tiered(&settings).await);
    let redis: Arc<RedisCache> = Arc::new(RedisCache::new(&settings));
    let keys: Vec<String> = (0..200).map(|i| format!("stocks:detail:R{i}")).collect();
    for key in &keys {
        redis
            .put(key, Bytes::from("kept"), HOUR)
            .await
            .expect("stored");
    }

    // Slots move under load: the client follows MOVED and ASK, and no direct command fails.
    let fallback_load = Load::start(cache.clone(), 32);
    let direct_load = Load::start(redis.clone(), 4);
    let primaries = cluster.primaries().await;
    cluster
        .reshard(primaries[0], primaries[1], 2000)
        .await
        .expect("redis-cli --cluster reshard");
    assert_eq!(
        direct_load.take_failures(),
        0,
        "a command failed during the reshard"
    );
    // A batch spanning the moved slots may wait out one command timeout while the client
    // rebuilds its slot map from the MOVED answers; then it reads every key where it went.
    let resharded_at = Instant::now();
    assert!(
        wait_until(FOLLOWS_WITHIN, || async {
            redis.get_many(&keys).await.ok() == Some(vec![Some(Bytes::from("kept")); 200])
        })
        .await,
        "the keys were not read where their slots went"
    );
    eprintln!(
        "cluster reshard: a batch over every key read them all {:.2} s after the reshard ended",
        resharded_at.elapsed().as_secs_f64()
    );

    // A primary dies under load: the fallback cache's callers see only failed commands, each
    // answered from the database, and none once the cluster has failed over.
    let killed_at = Instant::now();
    let killed = cluster.kill_a_primary().await;
    // Every key, so every primary's slots, the killed one's included.
    assert!(
        wait_until(FOLLOWS_WITHIN, || async {
            redis.get_many(&keys).await.ok() == Some(vec![Some(Bytes::from("kept")); 200])
        })
        .await,
        "the keys of the killed primary were not served again"
    );
    let redis_again = killed_at.elapsed().as_secs_f64();
    assert!(
        cluster.wait_until_ok(Duration::from_secs(60)).await,
        "the cluster did not fail {killed} over"
    );
    eprintln!(
        "cluster failover: primary {killed} killed (node timeout {CLUSTER_NODE_TIMEOUT_MS} ms); \
         every key was read from Redis again after {redis_again:.2} s"
    );
    // The fallback cache's own client learns the new primary from its own failed commands, as
    // the direct one did above; until it has, a command to the killed primary's slots may still
    // fail (twice in 500 ms once, in CI). Settled means serving from Redis and writing every
    // key, every primary's slots, there.
    assert!(
        wait_until(FOLLOWS_WITHIN, || async {
            for key in &keys {
                if cache.put(key, Bytes::from("kept"), HOUR).await.is_err() {
                    return false;
                }
            }
            serving_redis(cache.as_ref()).await
        })
        .await,
        "the fallback cache's client did not follow the failover"
    );
    settles_on_redis(cache.as_ref(), fallback_load, "cluster failover").await;
    direct_load.stop().await;

    // Invalidation still reaches every key, wherever its slot went: at once, or, when the
    // clear finds a connection the failover left behind, by the replay of the fallback cache
    // once it serves from Redis again.
    cache
        .clear()
        .await
        .expect("the fallback cache always answers");
    assert!(
        wait_until(FOLLOWS_WITHIN, || async {
            serving_redis(cache.as_ref()).await
                && redis.get_many(&keys).await.ok() == Some(vec![None; 200])
        })
        .await,
        "the clear did not reach every key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_over_tls_with_rediss_and_a_wrong_ca_is_refused() {
    let Some(server) = TlsRedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix("tls");
    let trusted = RedisSettings {
        url: server.url(),
        tls_ca_file: Some(server.ca_file()),
        key_prefix: prefix.clone(),
        ..RedisSettings::default()
    };
    assert!(server.url().starts_with("rediss://"), "{}", server.url());
    assert_cache_guarantees(&trusted, RedisTopology::Standalone).await;

    let Ok(stranger) = Certificates::generate().await else {
        panic!("openssl made the server's certificates a moment ago");
    };
    let untrusted = RedisSettings {
        tls_ca_file: Some(stranger.ca_file()),
        ..trusted
    };
    assert_refused_naming(&untrusted, "certificate").await;
    let fallback = tiered(&untrusted).await;
    assert_eq!(fallback.status().await.state, CacheState::FallenBack);
    fallback
        .put("k", Bytes::from("in memory"), HOUR)
        .await
        .expect("memory stands in");
    assert_eq!(text(&fallback, "k").await.as_deref(), Some("in memory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_and_their_master_over_tls() {
    let Some(set) = RedisSentinel::start_tls().await else {
        return;
    };
    let certificates = set.certificates().expect("a TLS set has certificates");
    let settings = with_ca(
        sentinel_settings(&set, &unique_prefix("sentinel-tls")),
        certificates,
    );
    assert_cache_guarantees(&settings, RedisTopology::Sentinel).await;

    // Plain text to a TLS-only Sentinel is never tried: without REDIS_TLS nothing answers.
    let plain = RedisSettings {
        tls: false,
        tls_ca_file: None,
        ..settings
    };
    assert!(RedisCache::new(&plain).ping().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_master_falls_back_to_memory_saying_so_and_recovers_once_monitored() {
    let Some(set) = RedisSentinel::start().await else {
        return;
    };
    let mut settings = sentinel_settings(&set, &unique_prefix("unknown-master"));
    let unknown = "not-monitored";
    settings.servers = RedisServers::Sentinel {
        sentinels: addresses(&set.sentinels_setting()),
        master: unknown.to_owned(),
    };
    assert_refused_naming(&settings, "master").await;
    let cache = tiered(&settings).await;
    assert_eq!(cache.status().await.state, CacheState::FallenBack);

    // Fixed: the Sentinels are told to monitor the master under that name.
    let master = set.master_port().await.expect("a master");
    for port in set.sentinel_ports() {
        let reply = stockpile_test_support::redis_cli([
            "-p",
            &port.to_string(),
            "SENTINEL",
            "MONITOR",
            unknown,
            "127.0.0.1",
            &master.to_string(),
            "2",
        ])
        .await;
        assert_eq!(reply.as_deref(), Ok("OK"));
    }
    assert!(
        wait_until(FOLLOWS_WITHIN, || serving_redis(&cache)).await,
        "the cache did not return to Redis once the master was monitored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_no_reachable_seed_falls_back_to_memory_saying_so_and_recovers_when_one_answers(
) {
    let Some(cluster) = RedisCluster::shared().await else {
        return;
    };
    // The only seed: a proxy in front of a node, closed until the "fix".
    let seed = FaultProxy::in_front_of(&cluster.addrs()[0]).await;
    seed.cut().await;
    let settings = RedisSettings {
        servers: RedisServers::Cluster {
            seeds: addresses(&format!("127.0.0.1:{}", seed.port())),
        },
        username: Some("default".to_owned()),
        password: Some("cluster-secret-9f2".to_owned()),
        key_prefix: unique_prefix("no-seed"),
        ..RedisSettings::default()
    };
    let redis = RedisCache::new(&settings);
    let refused = redis.ping().await.expect_err("no seed answers");
    assert!(
        refused
            .to_string()
            .contains("Failed to create initial connections"),
        "{refused}"
    );
    for shown in [
        refused.to_string(),
        format!("{redis:?}"),
        format!("{settings:?}"),
    ] {
        assert!(!shown.contains("cluster-secret-9f2"), "{shown}");
    }
    let cache = tiered(&RedisSettings {
        password: None,
        username: None,
        ..settings
    })
    .await;
    assert_eq!(cache.status().await.state, CacheState::FallenBack);
    assert_eq!(cache.status().await.topology, Some(RedisTopology::Cluster));

    seed.restore().await;
    assert!(
        wait_until(FOLLOWS_WITHIN, || serving_redis(&cache)).await,
        "the cache did not return to Redis once a seed answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls() {
    let Some(cluster) = RedisCluster::start_tls(3, 0).await else {
        return;
    };
    let certificates = cluster
        .certificates()
        .expect("a TLS cluster has certificates");
    let settings = with_ca(
        cluster_settings(&cluster, &unique_prefix("cluster-tls")),
        certificates,
    );
    assert_cache_guarantees(&settings, RedisTopology::Cluster).await;

    let Ok(stranger) = Certificates::generate().await else {
        panic!("openssl made the cluster's certificates a moment ago");
    };
    assert_refused_naming(&with_ca(settings, &stranger), "certificate").await;
}
