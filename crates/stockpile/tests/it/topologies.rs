//! The service wired to a Redis Sentinel and a Redis Cluster from its own variables, as an
//! operator sets them: `/api/cache/status` names the topology, and reads are served by it.

use figment::providers::{Format, Toml};
use stockpile::settings::{CacheBackendKind, FlatSettings};
use stockpile::Settings;
use stockpile_test_support::{RedisCluster, RedisSentinel};

use crate::support::{test_settings, TestApp, TestDatabase};

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
    let Some(set) = RedisSentinel::start().await else {
        return;
    };
    let sentinels = set.sentinels_setting();
    let master = set.master_name();
    let variables =
        format!("redis_sentinels = \"{sentinels}\"\nredis_sentinel_master = \"{master}\"");
    assert_served_by(&variables, "sentinel").await;
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
