//! A Redis Cluster of the test's own: nodes with `cluster-enabled yes` on spare ports (below
//! 55536, as each node's bus listens on its port + 10000), joined by
//! `redis-cli --cluster create`. [`RedisCluster::shared`] starts one for all the tests of a
//! test binary on first use; it goes when the binary ends.

use std::ffi::OsString;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::redis_server::RedisServer;
use crate::tls::Certificates;
use crate::{ready_or_skip, redis_cli, skip_or_fail, spare_port, wait_until};

/// How long a node may go unanswered before the others fail it over.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 2_000;

/// How long creating the cluster, or recovering from a failover, may take.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);

pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    tls: Option<Certificates>,
}

/// The cluster of this test binary, for tests that do not kill or move anything.
static SHARED: OnceCell<Option<RedisCluster>> = OnceCell::const_new();

impl RedisCluster {
    /// `primaries` primaries with `replicas` replicas each, once every node says the cluster
    /// is `ok`; `None` after [`skip_or_fail`] when it cannot be made.
    pub async fn start(primaries: usize, replicas: usize) -> Option<Self> {
        Self::start_with(primaries, replicas, None).await
    }

    /// As [`Self::start`], every node speaking TLS only, to clients and to each other
    /// (`REDIS_TLS=true`), with certificates of its own: see [`Self::certificates`].
    pub async fn start_tls(primaries: usize, replicas: usize) -> Option<Self> {
        match Certificates::generate().await {
            Ok(certificates) => Self::start_with(primaries, replicas, Some(certificates)).await,
            Err(why) => {
                skip_or_fail(&format!("cannot make test certificates: {why}"));
                None
            }
        }
    }

    async fn start_with(
        primaries: usize,
        replicas: usize,
        tls: Option<Certificates>,
    ) -> Option<Self> {
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        while ports.len() < primaries * (1 + replicas) {
            let port = cluster_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        for port in ports {
            let mut args = vec![
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-config-file".to_owned(),
                "nodes.conf".to_owned(),
                "--cluster-node-timeout".to_owned(),
                CLUSTER_NODE_TIMEOUT_MS.to_string(),
                // A replica takes over however long it was cut off: a test's data is small.
                "--cluster-replica-validity-factor".to_owned(),
                "0".to_owned(),
            ];
            if tls.is_some() {
                args.extend(["--tls-cluster".to_owned(), "yes".to_owned()]);
            }
            let args = args.into_iter().map(Into::into).collect();
            nodes.push(RedisServer::node(port, None, args, tls.as_ref()).await?);
        }
        let cluster = Self { nodes, tls };
        let mut create = cluster.cli_prefix();
        create.extend(["--cluster".into(), "create".into()]);
        create.extend(cluster.addrs().into_iter().map(Into::into));
        create.extend([
            "--cluster-replicas".into(),
            replicas.to_string().into(),
            "--cluster-yes".into(),
        ]);
        if let Err(why) = redis_cli(&create).await {
            skip_or_fail(&format!("redis-cli --cluster create failed: {why}"));
            return None;
        }
        let ready = cluster.wait_until_ok(SETTLE_WITHIN).await && cluster.replicas_in_sync().await;
        ready_or_skip(ready, cluster, |cluster| {
            format!(
                "the cluster was not ok within {SETTLE_WITHIN:?}{}",
                cluster.nodes[0].log_tail()
            )
        })
    }

    /// Three primaries with a replica each, shared by every test of this test binary: started
    /// by the first that asks, killed when the binary ends. Tests share it by using prefixes
    /// of their own; one that kills or moves anything starts a cluster of its own.
    pub async fn shared() -> Option<&'static Self> {
        SHARED.get_or_init(|| Self::start(3, 1)).await.as_ref()
    }

    /// The certificates of a cluster started with [`Self::start_tls`] (`REDIS_TLS_CA_FILE` is
    /// their `ca_file()`).
    pub fn certificates(&self) -> Option<&Certificates> {
        self.tls.as_ref()
    }

    /// `redis-cli` arguments before `--cluster …`: TLS ones for a TLS cluster.
    fn cli_prefix(&self) -> Vec<OsString> {
        self.tls
            .as_ref()
            .map(Certificates::cli_tls_args)
            .unwrap_or_default()
    }

    /// The nodes as `REDIS_CLUSTER_NODES` lists them: `127.0.0.1:<port>,…`.
    pub fn nodes_setting(&self) -> String {
        self.addrs().join(",")
    }

    /// `127.0.0.1:<port>` of every node.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect()
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The node on `port`, to ask (`cli`), kill or restart.
    pub fn node(&mut self, port: u16) -> Option<&mut RedisServer> {
        self.nodes.iter_mut().find(|node| node.port() == port)
    }

    /// The ports of the primaries that serve slots, as the first answering node sees them.
    pub async fn primaries(&self) -> Vec<u16> {
        self.cluster_nodes()
            .await
            .into_iter()
            .filter(|node| node.primary && node.serves_slots && !node.failed)
            .map(|node| node.port)
            .collect()
    }

    /// Kills one primary (SIGKILL) and returns its port; its replica takes over after
    /// [`CLUSTER_NODE_TIMEOUT_MS`]. [`Self::wait_until_ok`] waits for that.
    pub async fn kill_a_primary(&mut self) -> u16 {
        let port = *self
            .primaries()
            .await
            .first()
            .expect("the cluster has a primary");
        if let Some(node) = self.node(port) {
            node.kill().await;
        }
        port
    }

    /// Moves `slots` hash slots from the primary on `from` to the one on `to`
    /// (`redis-cli --cluster reshard`), returning once it is done.
    pub async fn reshard(&self, from: u16, to: u16, slots: u16) -> Result<(), String> {
        let nodes = self.cluster_nodes().await;
        let id = |port: u16| {
            nodes
                .iter()
                .find(|node| node.port == port)
                .map(|node| node.id.clone())
                .ok_or_else(|| format!("no node on port {port}"))
        };
        let (from_id, to_id) = (id(from)?, id(to)?);
        let slots = slots.to_string();
        let at = format!("127.0.0.1:{to}");
        let mut args = self.cli_prefix();
        args.extend(
            [
                "--cluster",
                "reshard",
                &at,
                "--cluster-from",
                &from_id,
                "--cluster-to",
                &to_id,
                "--cluster-slots",
                &slots,
                "--cluster-yes",
            ]
            .map(Into::into),
        );
        redis_cli(args).await.map(drop)
    }

    /// Whether, within `within`, every running node says `cluster_state:ok` with all 16384
    /// slots served, and `redis-cli --cluster check` finds them agreeing.
    pub async fn wait_until_ok(&self, within: Duration) -> bool {
        wait_until(within, || async {
            let mut seed = None;
            for node in &self.nodes {
                let Ok(info) = node.cli(["CLUSTER", "INFO"]).await else {
                    // A killed node: the others must do without it.
                    continue;
                };
                let ok = info.lines().any(|line| line.trim() == "cluster_state:ok")
                    && info
                        .lines()
                        .any(|line| line.trim() == "cluster_slots_ok:16384");
                if !ok {
                    return false;
                }
                seed.get_or_insert(node.port());
            }
            let Some(seed) = seed else {
                return false;
            };
            let mut check = self.cli_prefix();
            check.extend([
                "--cluster".into(),
                "check".into(),
                format!("127.0.0.1:{seed}").into(),
            ]);
            redis_cli(check).await.is_ok_and(|report| {
                report.contains("[OK] All nodes agree about slots configuration.")
                    && report.contains("[OK] All 16384 slots covered.")
            })
        })
        .await
    }

    /// Whether, within [`SETTLE_WITHIN`], every replica has synced with its primary.
    async fn replicas_in_sync(&self) -> bool {
        wait_until(SETTLE_WITHIN, || async {
            for node in &self.nodes {
                if node.info("replication", "role").await.as_deref() == Some("slave")
                    && node
                        .info("replication", "master_link_status")
                        .await
                        .as_deref()
                        != Some("up")
                {
                    return false;
                }
            }
            true
        })
        .await
    }

    /// `CLUSTER NODES` as the first answering node sees it.
    async fn cluster_nodes(&self) -> Vec<ClusterNode> {
        for node in &self.nodes {
            if let Ok(printed) = node.cli(["CLUSTER", "NODES"]).await {
                return printed.lines().filter_map(ClusterNode::parse).collect();
            }
        }
        Vec::new()
    }
}

/// One line of `CLUSTER NODES`:
/// `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>…`.
struct ClusterNode {
    id: String,
    port: u16,
    primary: bool,
    failed: bool,
    serves_slots: bool,
}

impl ClusterNode {
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (id, addr, flags) = (fields.first()?, fields.get(1)?, fields.get(2)?);
        let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
        let flags: Vec<&str> = flags.split(',').collect();
        Some(Self {
            id: (*id).to_owned(),
            port,
            primary: flags.contains(&"master"),
            failed: flags.contains(&"fail") || flags.contains(&"fail?"),
            serves_slots: fields.len() > 8,
        })
    }
}

/// A spare port below 55536 whose bus port (+ 10000) is spare too.
fn cluster_port() -> u16 {
    loop {
        let port = spare_port();
        if port < 55_536 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}
