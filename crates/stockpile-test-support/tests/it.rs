//! The servers and proxies of this crate, against the real `redis-server`.

use std::time::Duration;

use stockpile_test_support::{
    ping, redis_cli, spare_port, wait_until, Certificates, FaultProxy, RedisCluster, RedisSentinel,
    RedisServer, TlsRedisServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `PING` on `stream` and reads the answer, or `None` when none comes within `within`.
async fn ping_on(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    stream.write_all(b"PING\r\n").await.ok()?;
    let mut reply = vec![0_u8; 7];
    tokio::time::timeout(within, stream.read_exact(&mut reply))
        .await
        .ok()?
        .ok()?;
    Some(reply)
}

#[tokio::test]
async fn a_redis_server_answers_dies_when_killed_and_comes_back_on_its_port() {
    let Some(mut server) = RedisServer::start().await else {
        return;
    };
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert!(ping(server.port()).await);
    server.kill().await;
    assert!(!ping(server.port()).await, "still answering after the kill");
    assert!(server.restart().await, "did not come back");
    assert!(ping(server.port()).await);
}

#[tokio::test]
async fn a_fault_proxy_passes_swallows_and_cuts() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let proxy = FaultProxy::in_front_of(&format!("127.0.0.1:{}", server.port())).await;
    assert!(ping(proxy.port()).await, "not passing traffic");
    assert_eq!(proxy.url(), format!("redis://{}", proxy.addr()));

    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.swallow();
    assert_eq!(
        ping_on(&mut stream, Duration::from_millis(300)).await,
        None,
        "answered while swallowing"
    );
    proxy.pass();
    let mut held = vec![0_u8; 7];
    stream.read_exact(&mut held).await.unwrap();
    assert_eq!(held, b"+PONG\r\n", "what was swallowed did not flow on");

    proxy.slow(Duration::from_millis(50));
    assert!(ping(proxy.port()).await, "a slow proxy still answers");
    proxy.pass();

    proxy.cut().await;
    assert!(
        TcpStream::connect(proxy.addr()).await.is_err(),
        "a cut proxy accepts"
    );
    let mut dropped = [0_u8; 1];
    assert_eq!(
        stream.read(&mut dropped).await.unwrap_or(0),
        0,
        "open connection survived the cut"
    );
    proxy.restore().await;
    assert!(ping(proxy.port()).await, "not passing after the restore");
    assert!(
        proxy.connections() >= 4,
        "{} connections",
        proxy.connections()
    );
}

#[tokio::test]
async fn a_black_hole_accepts_and_never_answers() {
    let hole = FaultProxy::black_hole().await;
    let mut stream = TcpStream::connect(hole.addr()).await.unwrap();
    assert_eq!(ping_on(&mut stream, Duration::from_millis(300)).await, None);
    assert!(
        wait_until(Duration::from_secs(2), || std::future::ready(
            hole.connections() == 1
        ))
        .await
    );
}

#[test]
fn a_spare_port_can_be_bound() {
    let port = spare_port();
    assert_ne!(port, 0);
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

#[tokio::test]
async fn a_tls_server_answers_over_tls_only_to_clients_that_trust_its_authority() {
    let Some(server) = TlsRedisServer::start().await else {
        return;
    };
    assert_eq!(
        server.url(),
        format!("rediss://127.0.0.1:{}", server.port())
    );
    assert!(server.ca_file().is_file());
    let cli = server.certificates().cli_args(server.port());
    let set = redis_cli(
        cli.iter()
            .cloned()
            .chain(["SET".into(), "k".into(), "v".into()]),
    )
    .await;
    assert_eq!(set.as_deref(), Ok("OK"));
    let get = redis_cli(cli.iter().cloned().chain(["GET".into(), "k".into()])).await;
    assert_eq!(get.as_deref(), Ok("v"));
    assert!(!ping(server.port()).await, "answered plain text");
    let other = Certificates::generate().await.unwrap();
    let distrusted = redis_cli(
        other
            .cli_args(server.port())
            .into_iter()
            .chain(["PING".into()]),
    )
    .await;
    assert!(
        distrusted.is_err(),
        "a foreign authority was trusted: {distrusted:?}"
    );
}

#[tokio::test]
async fn a_sentinel_set_names_its_master_and_fails_over_when_it_is_killed() {
    let Some(mut set) = RedisSentinel::start().await else {
        return;
    };
    assert_eq!(set.sentinels_setting().split(',').count(), 3);
    let first = set.master_port().await.unwrap();
    let master = set.server(first).unwrap();
    assert_eq!(master.cli(["SET", "k", "v"]).await.as_deref(), Ok("OK"));

    let promoted = set.failover().await;
    assert_ne!(promoted, first);
    let new_master = set.server(promoted).unwrap();
    assert_eq!(new_master.cli(["GET", "k"]).await.as_deref(), Ok("v"));

    // The old master is a replica now; once it follows, killing the master promotes it back.
    let old = set.server(first).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || async {
            old.info("replication", "master_link_status")
                .await
                .as_deref()
                == Some("up")
        })
        .await,
        "the old master never followed the new one"
    );
    let killed = set.kill_master().await;
    assert_eq!(killed, promoted);
    let started = std::time::Instant::now();
    let back = set
        .wait_for_new_master(killed, Duration::from_secs(30))
        .await;
    assert_eq!(back, Some(first), "no promotion after the kill");
    eprintln!("promoted {:?} after the kill", started.elapsed());
}

#[tokio::test]
async fn the_shared_cluster_starts_once_and_routes_keys_to_their_slots() {
    let Some(cluster) = RedisCluster::shared().await else {
        return;
    };
    let again = RedisCluster::shared().await.unwrap();
    assert!(std::ptr::eq(cluster, again), "a second cluster was started");
    assert_eq!(cluster.ports().len(), 6);
    assert!(cluster.ports().iter().all(|port| *port < 55_536));
    assert_eq!(cluster.primaries().await.len(), 3);
    let seed = cluster.addrs()[0].clone();
    let (host, port) = seed.split_once(':').unwrap();
    // -c follows MOVED: keys land on whichever primary owns their slot.
    for key in ["a", "b", "c", "{user}:1", "{user}:2"] {
        let set = redis_cli(["-c", "-h", host, "-p", port, "SET", key, "v"]).await;
        assert_eq!(set.as_deref(), Ok("OK"), "SET {key}");
        let get = redis_cli(["-c", "-h", host, "-p", port, "GET", key]).await;
        assert_eq!(get.as_deref(), Ok("v"), "GET {key}");
    }
    let info = redis_cli(["-h", host, "-p", port, "CLUSTER", "INFO"])
        .await
        .unwrap();
    assert!(info.contains("cluster_state:ok"), "{info}");
}

#[tokio::test]
async fn a_cluster_of_its_own_fails_over_a_killed_primary_and_reshards() {
    let Some(mut cluster) = RedisCluster::start(3, 1).await else {
        return;
    };
    let killed = cluster.kill_a_primary().await;
    assert!(
        cluster.wait_until_ok(Duration::from_secs(60)).await,
        "no failover of {killed}"
    );
    let primaries = cluster.primaries().await;
    assert_eq!(primaries.len(), 3, "{primaries:?}");
    assert!(!primaries.contains(&killed));
    cluster
        .reshard(primaries[0], primaries[1], 100)
        .await
        .unwrap();
    assert!(cluster.wait_until_ok(Duration::from_secs(60)).await);
}

#[tokio::test]
async fn a_tls_cluster_and_a_tls_sentinel_set_answer_over_tls() {
    let Some(cluster) = RedisCluster::start_tls(3, 0).await else {
        return;
    };
    let ca = cluster.certificates().unwrap();
    let port = cluster.ports()[0];
    assert!(!ping(port).await, "a TLS node answered plain text");
    let mut cli = ca.cli_args(port);
    cli.extend(["-c".into(), "SET".into(), "k".into(), "v".into()]);
    assert_eq!(redis_cli(cli).await.as_deref(), Ok("OK"));

    let Some(set) = RedisSentinel::start_tls().await else {
        return;
    };
    let master = set.master_port().await.unwrap();
    assert!(!ping(master).await, "a TLS master answered plain text");
    let sentinel = set.sentinel_ports()[0];
    assert!(!ping(sentinel).await, "a TLS Sentinel answered plain text");
    let mut ask = set.certificates().unwrap().cli_args(sentinel);
    ask.extend(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", set.master_name()].map(Into::into));
    let addr = redis_cli(ask).await.unwrap();
    assert_eq!(addr, format!("127.0.0.1\n{master}"));
}
