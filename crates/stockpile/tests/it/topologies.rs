//! The service wired to a Redis Sentinel and a Redis Cluster from its own variables, as an
//! operator sets them: `/api/cache/status` names the topology, and reads are served by it;
//! and a master demoted under the service's open connections is left for the new one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use figment::providers::{Format, Toml};
use stockpile::settings::{CacheBackendKind, FlatSettings};
use stockpile::Settings;
use stockpile_test_support::{redis_cli, RedisCluster, RedisSentinel};

use crate::invalidation::rename;
use crate::support::{one_heavy_test_at_a_time, test_settings, TestApp, TestDatabase};

/// Held by a test while it uses the shared Sentinel set, so that none reads through it while
/// another moves its master.
static SENTINEL_SET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The variables of a service reaching `set` through its Sentinels.
fn sentinel_variables(set: &RedisSentinel) -> String {
    let sentinels = set.sentinels_setting();
    let master = set.master_name();
    format!("redis_sentinels = \"{sentinels}\"\nredis_sentinel_master = \"{master}\"")
}

/// A server whose Redis section comes from `variables` (`key = "value"` lines), with the
/// first tier off so that every read is Redis's.
async fn spawn_on(variables: &str) -> TestApp {
    let database = TestDatabase::sqlite();
    let loaded = Settings::from_figment(
        Settings::defaults().merge(FlatSettings::new(Toml::string(variables))),
    )
    .unwrap_or_else(|e| panic!("{variables}: {e}"));
    let mut settings = test_settings(&database);
    settings.redis = loaded.redis;
    settings.cache.backend = CacheBackendKind::Redis;
    settings.cache.key_prefix = format!("e2e-topology-{}:", uuid::Uuid::new_v4().simple());
    settings.cache.local_ttl = 0;
    TestApp::spawn_with(settings, database, 3, 5).await
}

/// A server on `variables`: its status names `topology`, and Redis serves (a read is a
/// miss, the next a hit).
async fn assert_served_by(variables: &str, topology: &str) {
    let app = spawn_on(variables).await;
    let status = app.json("/api/cache/status").await;
    assert_eq!(
        (&status["topology"], &status["backend"], &status["degraded"]),
        (&topology.into(), &"redis".into(), &false.into()),
        "{status}"
    );
    let path = "/api/stocks?page=1&page_size=3";
    assert_eq!(app.get(path).await.headers()["x-cache"], "MISS");
    assert_eq!(app.get(path).await.headers()["x-cache"], "HIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reads_through_sentinels_named_by_its_variables() {
    let _set = SENTINEL_SET.lock().await;
    let Some(set) = RedisSentinel::shared().await else {
        return;
    };
    assert_served_by(&sentinel_variables(set), "sentinel").await;
}

/// `field` of `INFO <section>` on the Redis at `port`.
async fn info(port: u16, section: &str, field: &str) -> Option<String> {
    let printed = redis_cli(["-p", &port.to_string(), "INFO", section])
        .await
        .unwrap_or_else(|e| panic!("INFO {section} on {port}: {e}"));
    printed.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then(|| value.trim().to_owned())
    })
}

/// Issue 11: the service follows a promotion "on READONLY answers, not only at start". The
/// master is demoted to a replica with the service's connections to it left open (a Sentinel
/// failover would close them), so only a write's `READONLY` tells the service it moved: the
/// service must take it as a topology change, open connections to the master the Sentinels
/// name, and go on serving from Redis without falling back to memory, with no failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_demoted_under_open_connections_is_left_for_the_new_one_at_its_first_readonly() {
    let _heavy = one_heavy_test_at_a_time().await;
    let _set = SENTINEL_SET.lock().await;
    let Some(set) = RedisSentinel::shared().await else {
        return;
    };
    // Two cores run the set, the service and the readers: a command may wait for a thread past
    // the default 100 ms, which is not what this test is about.
    let variables = format!(
        "{}\nredis_command_timeout_ms = 1000",
        sentinel_variables(set)
    );
    let app = Arc::new(spawn_on(&variables).await);
    let tickers: Vec<String> = app.json("/api/stocks").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["ticker"].as_str().unwrap().to_owned())
        .collect();
    // Connections to the master, used for reads and writes alike.
    for ticker in &tickers {
        rename(&app, ticker, "before").await;
        assert_eq!(
            app.json(&format!("/api/stocks/{ticker}")).await["name"],
            "before"
        );
    }
    let fallbacks_before = app.json("/api/cache/status").await["fallbacks"].clone();

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let paths: Vec<String> = tickers
        .iter()
        .map(|ticker| format!("/api/stocks/{ticker}"))
        .chain([
            "/api/stocks?page=1&page_size=3".to_owned(),
            format!("/api/quotes?tickers={}", tickers.join(",")),
        ])
        .collect();
    // Cached before the readers start, so that they only read.
    for path in &paths {
        assert_eq!(app.get(path).await.status(), 200, "GET {path}");
    }
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (app, stop, failures, paths) = (
                Arc::clone(&app),
                Arc::clone(&stop),
                Arc::clone(&failures),
                paths.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    for path in &paths {
                        let status = app.get(path).await.status();
                        if !status.is_success() {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("GET {path}: {status}"));
                        }
                    }
                }
            })
        })
        .collect();

    let master = set
        .master_port()
        .await
        .expect("a Sentinel names the master");
    let readonly_before = info(master, "errorstats", "errorstat_READONLY").await;
    let (old, new) = set.swap_master_keeping_clients().await;
    assert_eq!(old, master);
    // The readers only read entries they cached before: nothing of theirs wrote to the old
    // master, so only the write below can meet its READONLY.
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    assert_eq!(*failures.lock().unwrap(), Vec::<String>::new());
    redis_cli(["-p", &new.to_string(), "CONFIG", "RESETSTAT"])
        .await
        .unwrap();

    rename(&app, &tickers[0], "after").await;
    assert_ne!(
        info(old, "errorstats", "errorstat_READONLY").await,
        readonly_before,
        "the write did not reach the demoted master: READONLY was not tested"
    );
    // Every connection follows, not only the one that wrote: the others would go on reading
    // a replica, older than the master by its replication lag. The readers' connections
    // reach both HTTP workers, each with a Redis connection of its own.
    redis_cli(["-p", &old.to_string(), "CONFIG", "RESETSTAT"])
        .await
        .unwrap();
    let reads: Vec<_> = paths
        .iter()
        .cycle()
        .take(32)
        .map(|path| {
            let (app, path) = (Arc::clone(&app), path.clone());
            tokio::spawn(async move { app.get(&path).await.status() })
        })
        .collect();
    for read in reads {
        let status = read.await.unwrap();
        assert!(status.is_success(), "{status}");
    }
    for read in ["cmdstat_get", "cmdstat_mget"] {
        assert_eq!(
            info(old, "commandstats", read).await,
            None,
            "the demoted master was still read after the service had moved"
        );
    }
    for (n, ticker) in tickers.iter().enumerate() {
        let name = format!("after {n}");
        rename(&app, ticker, &name).await;
        assert_eq!(
            app.json(&format!("/api/stocks/{ticker}")).await["name"],
            name.as_str()
        );
    }
    let revocations = info(new, "commandstats", "cmdstat_unlink").await;
    assert!(
        revocations.is_some(),
        "the writes' revocations never reached the new master"
    );
    let status = app.json("/api/cache/status").await;
    assert_eq!(
        (
            &status["backend"],
            &status["degraded"],
            &status["fallbacks"]
        ),
        (&"redis".into(), &false.into(), &fallbacks_before),
        "READONLY is a moved master, not an outage: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reads_through_a_cluster_named_by_its_variables() {
    let Some(cluster) = RedisCluster::shared().await else {
        return;
    };
    let nodes = cluster.nodes_setting();
    let variables = format!("redis_cluster_nodes = \"{nodes}\"\nredis_command_timeout_ms = 500");
    assert_served_by(&variables, "cluster").await;
}
