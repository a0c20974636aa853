//! What Stockpile's tests share: servers they own on spare loopback ports, TCP proxies that
//! stage network faults, an in-memory fake cache, and the rule for a test that cannot find what
//! it needs (skip loudly, or fail under `CI=true`), and a reader of Server-Sent Events.
//!
//! Only ever a dev-dependency (`cargo xtask layers` checks it): nothing here ships.

mod bars;
mod cluster;
mod fake_cache;
mod fault_proxy;
mod process;
mod redis_server;
mod sentinel;
mod sse;
mod tls;

use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant};

pub use bars::bar_of_units;
pub use cluster::{RedisCluster, CLUSTER_NODE_TIMEOUT_MS};
pub use fake_cache::{cache_status, CacheMode, FakeCache};
pub use fault_proxy::FaultProxy;
pub use process::redis_cli;
pub use redis_server::{ping, RedisServer};
pub use sentinel::{RedisSentinel, SENTINEL_MASTER};
pub use sse::{parse_sse_event, take_sse_block, SseEvent};
pub use tls::{Certificates, TlsRedisServer};

/// Whether the tests run under `CI=true`, where everything they need must be there.
pub fn on_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A test that cannot find what it needs (`why`): under `CI=true` this fails it; elsewhere it
/// says so on the terminal, and the caller returns early.
///
/// The message is written to the stream itself, not with `eprintln!`: the test harness
/// captures the print macros and shows nothing of a test that passed.
pub fn skip_or_fail(why: &str) {
    assert!(!on_ci(), "{why}, and CI=true: this test must run, not skip");
    let test = std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .map(|name| format!(" {name}"))
        .unwrap_or_default();
    let _ = std::io::stderr().write_all(
        format!("\n*** SKIPPED{test}: {why} (set CI=true to make this a failure) ***\n").as_bytes(),
    );
}

/// `Some(started)` when it is `ready`; otherwise [`skip_or_fail`] with what `why` says of it.
pub(crate) fn ready_or_skip<T>(
    ready: bool,
    started: T,
    why: impl FnOnce(&T) -> String,
) -> Option<T> {
    if ready {
        Some(started)
    } else {
        skip_or_fail(&why(&started));
        None
    }
}

/// A loopback port nothing listens on right now.
pub fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("no spare port: {e}"))
}

/// Checks `condition` every few milliseconds until it holds (true) or `within` has passed
/// (false): a wait for a state, never a guess at how long it takes.
pub async fn wait_until<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A directory of its own under the system's temporary one, removed when dropped.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(purpose: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("stockpile-{purpose}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
