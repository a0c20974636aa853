//! The servers and proxies of this crate, against the real `redis-server`.

use std::time::Duration;

use stockpile_test_support::{ping, spare_port, wait_until, FaultProxy, RedisServer};
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
