//! A Sentinel-managed Redis of the test's own: a primary, a replica and three
//! `redis-server --sentinel` on spare ports, started and stopped by the test.
//! [`RedisSentinel::shared`] starts one for all the tests of a test binary on first use.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::redis_server::RedisServer;
use crate::tls::Certificates;
use crate::{ready_or_skip, skip_or_fail, spare_port, wait_until, TempDir};

/// The master's name at the Sentinels (`REDIS_SENTINEL_MASTER`).
pub const SENTINEL_MASTER: &str = "stockpile-test";

/// How long the Sentinels wait for an unanswering master before they call it down.
const DOWN_AFTER_MS: u64 = 1_000;

/// How long setting up, or a failover, may take.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

static SHARED: OnceCell<Option<RedisSentinel>> = OnceCell::const_new();

pub struct RedisSentinel {
    /// The first primary and the first replica; which is the master now, the Sentinels say.
    servers: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
    /// The Sentinels' configuration files, which they rewrite as they learn.
    _configs: TempDir,
    tls: Option<Certificates>,
}

impl RedisSentinel {
    /// A primary, a replica in sync with it and three Sentinels that agree on the master,
    /// know the replica and each other; `None` after [`skip_or_fail`] when it cannot start.
    pub async fn start() -> Option<Self> {
        Self::start_with(None).await
    }

    /// A set shared by every test of this test binary: started by the first that asks, killed
    /// when the binary ends. Tests share it by using prefixes of their own, and make sure
    /// that none of them is reading while another moves the master.
    pub async fn shared() -> Option<&'static Self> {
        SHARED.get_or_init(Self::start).await.as_ref()
    }

    /// As [`Self::start`], every server and Sentinel speaking TLS only (`REDIS_TLS=true`),
    /// with certificates of its own: see [`Self::certificates`].
    pub async fn start_tls() -> Option<Self> {
        match Certificates::generate().await {
            Ok(certificates) => Self::start_with(Some(certificates)).await,
            Err(why) => {
                skip_or_fail(&format!("cannot make test certificates: {why}"));
                None
            }
        }
    }

    async fn start_with(tls: Option<Certificates>) -> Option<Self> {
        let primary = RedisServer::node(spare_port(), None, Vec::new(), tls.as_ref()).await?;
        let follow = ["--replicaof", "127.0.0.1", &primary.port().to_string()].map(Into::into);
        let replica = RedisServer::node(spare_port(), None, follow.to_vec(), tls.as_ref()).await?;
        let configs = TempDir::new("sentinel");
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = spare_port();
            let config = configs.path().join(format!("sentinel-{port}.conf"));
            let text = format!(
                "sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {SENTINEL_MASTER} 10000\n\
                 sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
                primary = primary.port()
            );
            if let Err(e) = std::fs::write(&config, text) {
                skip_or_fail(&format!("cannot write {}: {e}", config.display()));
                return None;
            }
            let sentinel = ["--sentinel".into()].to_vec();
            sentinels.push(RedisServer::node(port, Some(config), sentinel, tls.as_ref()).await?);
        }
        let set = Self {
            servers: vec![primary, replica],
            sentinels,
            _configs: configs,
            tls,
        };
        let ready = set.settled_on(set.servers[0].port()).await;
        ready_or_skip(ready, set, |set| {
            format!(
                "the Sentinels did not agree on the master within {SETTLE_WITHIN:?}{}",
                set.sentinels[0].log_tail()
            )
        })
    }

    /// The Sentinels as `REDIS_SENTINELS` lists them: `127.0.0.1:<port>,…`.
    pub fn sentinels_setting(&self) -> String {
        self.sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(RedisServer::port).collect()
    }

    /// The certificates of a set started with [`Self::start_tls`] (`REDIS_TLS_CA_FILE` is
    /// their `ca_file()`).
    pub fn certificates(&self) -> Option<&Certificates> {
        self.tls.as_ref()
    }

    /// The master's name at the Sentinels (`REDIS_SENTINEL_MASTER`).
    pub fn master_name(&self) -> &'static str {
        SENTINEL_MASTER
    }

    /// The port of the master as the first Sentinel that answers names it.
    pub async fn master_port(&self) -> Option<u16> {
        for sentinel in &self.sentinels {
            if let Some(master) = master_at(sentinel).await {
                return master.get("port").and_then(|port| port.parse().ok());
            }
        }
        None
    }

    /// The data server (primary or replica) on `port`, to kill or restart.
    pub fn server(&mut self, port: u16) -> Option<&mut RedisServer> {
        self.servers.iter_mut().find(|server| server.port() == port)
    }

    /// Kills the current master (SIGKILL) and returns its port; the Sentinels notice after
    /// about a second. [`Self::wait_for_new_master`] waits for the promotion.
    pub async fn kill_master(&mut self) -> u16 {
        let old = self
            .master_port()
            .await
            .expect("a Sentinel names the master");
        if let Some(server) = self.server(old) {
            server.kill().await;
        }
        old
    }

    /// Waits until every Sentinel names a master other than `old`, and that server says it is
    /// one; its port, or `None` after `within`.
    pub async fn wait_for_new_master(&self, old: u16, within: Duration) -> Option<u16> {
        let new = std::sync::Mutex::new(None);
        let moved = wait_until(within, || async {
            let Some(port) = self.agreed_master().await.filter(|port| *port != old) else {
                return false;
            };
            *new.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(port);
            self.is_master(port).await
        })
        .await;
        let new = *new
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        new.filter(|_| moved)
    }

    /// Has the Sentinels fail over with the master alive (`SENTINEL FAILOVER`), and waits
    /// until the replica is master; the new master's port.
    pub async fn failover(&self) -> u16 {
        let old = self
            .master_port()
            .await
            .expect("a Sentinel names the master");
        let asked = self.sentinels[0]
            .cli(["SENTINEL", "FAILOVER", SENTINEL_MASTER])
            .await;
        assert_eq!(asked.as_deref(), Ok("OK"), "SENTINEL FAILOVER");
        self.wait_for_new_master(old, SETTLE_WITHIN)
            .await
            .unwrap_or_else(|| panic!("no new master within {SETTLE_WITHIN:?}"))
    }

    /// Swaps the master and the replica by hand, leaving every client connection open: the
    /// replica is promoted (`REPLICAOF NO ONE`), the master follows it (`REPLICAOF`), and each
    /// Sentinel is pointed at the new master (`SENTINEL REMOVE`, `MONITOR`, `SET`). A Sentinel
    /// failover would close the demoted master's clients (`CLIENT KILL`); here they stay
    /// connected to what is now a replica, whose answer to a write is `READONLY`.
    ///
    /// Returns (old master, new master) once every Sentinel names the new one, knows the
    /// replica and the other Sentinels, and the old master is in sync with the new.
    pub async fn swap_master_keeping_clients(&self) -> (u16, u16) {
        let old = self
            .master_port()
            .await
            .expect("a Sentinel names the master");
        let (Some(demoted), Some(promoted)) = (
            self.servers.iter().find(|server| server.port() == old),
            self.servers.iter().find(|server| server.port() != old),
        ) else {
            panic!("the Sentinels name {old}, which is not one of the set's servers");
        };
        let new = promoted.port();
        let ok = |reply: Result<String, String>, what: &str| {
            assert_eq!(reply.as_deref(), Ok("OK"), "{what}");
        };
        ok(
            promoted.cli(["REPLICAOF", "NO", "ONE"]).await,
            "REPLICAOF NO ONE",
        );
        ok(
            demoted
                .cli(["REPLICAOF", "127.0.0.1", &new.to_string()])
                .await,
            "REPLICAOF the new master",
        );
        for sentinel in &self.sentinels {
            ok(
                sentinel.cli(["SENTINEL", "REMOVE", SENTINEL_MASTER]).await,
                "SENTINEL REMOVE",
            );
            ok(
                sentinel
                    .cli([
                        "SENTINEL",
                        "MONITOR",
                        SENTINEL_MASTER,
                        "127.0.0.1",
                        &new.to_string(),
                        "2",
                    ])
                    .await,
                "SENTINEL MONITOR",
            );
            ok(
                sentinel
                    .cli([
                        "SENTINEL",
                        "SET",
                        SENTINEL_MASTER,
                        "down-after-milliseconds",
                        &DOWN_AFTER_MS.to_string(),
                        "failover-timeout",
                        "10000",
                    ])
                    .await,
                "SENTINEL SET",
            );
        }
        assert!(
            self.settled_on(new).await,
            "the Sentinels did not settle on {new} within {SETTLE_WITHIN:?}"
        );
        (old, new)
    }

    /// The master's port when every running Sentinel names the same one.
    async fn agreed_master(&self) -> Option<u16> {
        let mut agreed = None;
        for sentinel in &self.sentinels {
            let port = master_at(sentinel).await?.get("port")?.parse().ok()?;
            if agreed.is_some_and(|agreed| agreed != port) {
                return None;
            }
            agreed = Some(port);
        }
        agreed
    }

    async fn is_master(&self, port: u16) -> bool {
        match self.servers.iter().find(|server| server.port() == port) {
            Some(server) => server.info("replication", "role").await.as_deref() == Some("master"),
            None => false,
        }
    }

    /// Whether, within [`SETTLE_WITHIN`], every Sentinel names `primary`, knows the replica and
    /// the two other Sentinels, and the replica (the server that is not `primary`) is in sync.
    async fn settled_on(&self, primary: u16) -> bool {
        wait_until(SETTLE_WITHIN, || async {
            for sentinel in &self.sentinels {
                let Some(master) = master_at(sentinel).await else {
                    return false;
                };
                let field = |name: &str| master.get(name).map(String::as_str);
                if field("port") != Some(&primary.to_string())
                    || field("flags") != Some("master")
                    || field("num-slaves") != Some("1")
                    || field("num-other-sentinels") != Some("2")
                {
                    return false;
                }
            }
            let Some(replica) = self.servers.iter().find(|server| server.port() != primary) else {
                return false;
            };
            replica
                .info("replication", "master_link_status")
                .await
                .as_deref()
                == Some("up")
        })
        .await
    }
}

/// `SENTINEL MASTER` at `sentinel`, as its field names and values.
async fn master_at(sentinel: &RedisServer) -> Option<HashMap<String, String>> {
    let printed = sentinel
        .cli(["SENTINEL", "MASTER", SENTINEL_MASTER])
        .await
        .ok()?;
    let lines: Vec<&str> = printed.lines().collect();
    Some(
        lines
            .chunks(2)
            .filter_map(|pair| match pair {
                [name, value] => Some(((*name).to_owned(), (*value).to_owned())),
                _ => None,
            })
            .collect(),
    )
}
