//! `cargo xtask bench-topologies`: hits on a Redis Cluster as a share of standalone Redis, and
//! the blackout of a Sentinel failover. The release server over the bench's PostgreSQL, with
//! servers of the task's own on spare loopback ports:
//!
//! - *Cluster hits*: a standalone `redis-server` and a Redis Cluster of three primaries
//!   (`redis-cli --cluster create`, no replicas), one server on each, both with the first tier
//!   off (`CACHE_LOCAL_TTL=0`, so every hit is a Redis round trip); wrk on every cached read,
//!   alternating between the two servers read by read, so they share each moment of the
//!   machine.
//! - *Failover*: a primary, a replica and three Sentinels (`down-after-milliseconds` 1,000); the
//!   server on them (`REDIS_SENTINELS`, first tier off) under 32 connections reading cached
//!   keys; the primary is killed with SIGKILL. With the first tier off, in-process memory keeps
//!   nothing while it stands in for Redis, so an `X-Cache: HIT` after the kill is an answer
//!   served by Redis, the promoted replica: the blackout is the time from the kill to the first
//!   one.

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::compression_bench::WATCHLIST;
use crate::harness::spare_port;
use crate::harness::{
    cache_status, connect, ensure_on_redis, exchange, load_average, machine, prepare, start_server,
    today, wrk_alternating, TempDir, BENCH_DATABASE, CONNECTIONS, ROUNDS, SECONDS,
};
use crate::quotes_bench::quotes_path;
use crate::write_bench::PrivateRedis;

const PREFIX: &str = "stockpile-bench-topologies:";
const STANDALONE: &str = "127.0.0.1:18250";
const CLUSTER: &str = "127.0.0.1:18251";
const SENTINEL: &str = "127.0.0.1:18252";
const PRIMARIES: usize = 3;
/// The same on both servers: room for a slow answer on two cores that run wrk, the server and
/// Redis, so that a late reply under saturation does not switch a server to memory mid-run.
const COMMAND_TIMEOUT_MS: &str = "500";
const SENTINEL_MASTER: &str = "stockpile-bench";
const DOWN_AFTER_MS: u64 = 1_000;
/// Connections reading cached keys through the failover.
const READERS: usize = 32;
/// The longest the failover may take before the task gives up on it.
const FAILOVER_WITHIN: Duration = Duration::from_secs(30);
/// How long the load goes on once Redis serves again, to see that nothing fails after it.
const AFTERWARDS: Duration = Duration::from_secs(3);

pub fn bench_topologies(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: cargo xtask bench-topologies".into());
    }
    prepare(BENCH_DATABASE, &[])?;
    let load_before = load_average();
    let shares = cluster_shares()?;
    let failover = failover()?;
    write_report(&shares, &failover, [&load_before, &load_average()])
}

/// A read and its req/s on standalone and on the cluster, and the servers' fallbacks during it.
struct Share {
    name: String,
    standalone: f64,
    cluster: f64,
    fallbacks: u64,
}

fn server_env<'a>(redis: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CACHE_BACKEND", "redis"),
        ("CACHE_KEY_PREFIX", PREFIX),
        ("CACHE_LOCAL_TTL", "0"),
        ("REDIS_COMMAND_TIMEOUT_MS", COMMAND_TIMEOUT_MS),
        redis,
    ]
}

fn cluster_shares() -> Result<Vec<Share>, String> {
    let standalone_redis = PrivateRedis::start()?;
    let cluster = Cluster::start(PRIMARIES)?;
    let standalone_url = standalone_redis.url();
    let nodes = cluster.nodes_setting();
    let _standalone = start_server(
        STANDALONE,
        BENCH_DATABASE,
        &server_env(("REDIS_URL", &standalone_url)),
    )?;
    let _cluster = start_server(
        CLUSTER,
        BENCH_DATABASE,
        &server_env(("REDIS_CLUSTER_NODES", &nodes)),
    )?;
    for addr in [STANDALONE, CLUSTER] {
        ensure_on_redis(addr)?;
    }
    let topology = cache_status(CLUSTER)?["topology"].clone();
    if topology != "cluster" {
        return Err(format!("the cluster's server reports topology {topology}"));
    }
    let mut reads = vec![("/health (reference)".to_owned(), "/health".to_owned())];
    reads.extend(
        crate::bench::READS
            .iter()
            .map(|(name, path)| ((*name).to_owned(), (*path).to_owned())),
    );
    reads.push((
        format!("batch quotes ({WATCHLIST} tickers)"),
        quotes_path(&mut connect(STANDALONE)?, WATCHLIST)?,
    ));
    let mut shares = Vec::new();
    for (name, path) in reads {
        for addr in [STANDALONE, CLUSTER] {
            warm(addr, &path)?;
        }
        let before = fallbacks()?;
        let (standalone, cluster) = wrk_alternating(
            (STANDALONE, &path),
            (CLUSTER, &path),
            CONNECTIONS,
            &[],
            SECONDS,
        )?;
        let fallbacks = fallbacks()? - before;
        println!(
            "no L1 hit {name:<34} standalone {standalone:>8.0} req/s  cluster {cluster:>8.0} req/s  ({:.0} %){}",
            cluster / standalone * 100.0,
            if fallbacks > 0 {
                format!("  {fallbacks} fallback(s) to memory")
            } else {
                String::new()
            }
        );
        shares.push(Share {
            name,
            standalone,
            cluster,
            fallbacks,
        });
    }
    Ok(shares)
}

/// Both servers' switches to memory so far.
fn fallbacks() -> Result<u64, String> {
    let mut total = 0;
    for addr in [STANDALONE, CLUSTER] {
        total += cache_status(addr)?["fallbacks"]
            .as_u64()
            .ok_or("/api/cache/status has no fallbacks")?;
    }
    Ok(total)
}

/// Asks `path` until it is a hit (its first answer stores it).
fn warm(addr: &str, path: &str) -> Result<(), String> {
    let mut stream = connect(addr)?;
    for _ in 0..10 {
        let answer = exchange(&mut stream, "GET", path, "", "")?;
        if answer.status != 200 {
            return Err(format!("{addr}{path} answered {}", answer.status));
        }
        if path == "/health" || answer.header("x-cache") == Some("HIT") {
            return Ok(());
        }
    }
    Err(format!("{addr}{path} was never a hit"))
}

/// `redis-cli -p port args…`'s output.
fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Polls `ready` every 50 ms until it holds or `within` passes.
fn wait_for(within: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while !ready() {
        if Instant::now() > deadline {
            return Err(format!("{what} within {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A Redis Cluster of primaries only; the nodes stop when dropped, before their directory goes.
struct Cluster {
    nodes: Vec<PrivateRedis>,
    _dir: TempDir,
}

impl Cluster {
    fn start(primaries: usize) -> Result<Self, String> {
        let dir = TempDir::new("bench-cluster")?;
        let dir_text = dir.path().display().to_string();
        let mut nodes = Vec::new();
        for _ in 0..primaries {
            let port = cluster_port()?;
            let config = format!("nodes-{port}.conf");
            nodes.push(PrivateRedis::start_on(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &config,
                    "--dir",
                    &dir_text,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
            )?);
        }
        let cluster = Self { nodes, _dir: dir };
        let addrs: Vec<String> = cluster.addrs();
        let mut create: Vec<&str> = vec!["--cluster", "create"];
        create.extend(addrs.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        cli(cluster.nodes[0].port(), &create)?;
        wait_for(Duration::from_secs(30), "the cluster was not ok", || {
            cluster.nodes.iter().all(|node| {
                cli(node.port(), &["CLUSTER", "INFO"]).is_ok_and(|info| {
                    info.lines().any(|l| l.trim() == "cluster_state:ok")
                        && info.lines().any(|l| l.trim() == "cluster_slots_ok:16384")
                })
            })
        })?;
        Ok(cluster)
    }

    fn addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect()
    }

    /// `REDIS_CLUSTER_NODES`.
    fn nodes_setting(&self) -> String {
        self.addrs().join(",")
    }
}

/// A spare port below 55536 whose cluster bus port (+ 10000) is spare too.
fn cluster_port() -> Result<u16, String> {
    loop {
        let port = spare_port()?;
        if port < 55_536 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
}

/// What the failover showed, in seconds from the kill.
struct Failover {
    /// Until the promoted replica said it was master.
    promoted: f64,
    /// Until `/api/cache/status` first said `degraded: true`, if it ever did.
    degraded: Option<f64>,
    /// Until `/api/cache/status` said `backend: redis`, `degraded: false` again.
    status_back: f64,
    /// Until the first answer Redis served (`X-Cache: HIT`).
    first_redis_answer: f64,
    /// Answers from the kill to the first Redis-served one, by `X-Cache`.
    blackout_answers: Vec<(String, usize)>,
    /// Reads after the kill, and of them: non-2xx answers, and requests with no answer.
    reads: usize,
    non_2xx: usize,
    transport_errors: usize,
}

impl Failover {
    fn degraded_text(&self) -> String {
        self.degraded
            .map_or("never".to_owned(), |s| format!("{s:.2} s"))
    }
}

/// One read of the load: when it was sent and answered, and its status and `X-Cache` (`None`
/// when no answer came).
struct Outcome {
    sent: Instant,
    answered: Instant,
    answer: Option<(u16, String)>,
}

fn failover() -> Result<Failover, String> {
    let dir = TempDir::new("bench-sentinel")?;
    let mut primary = PrivateRedis::start()?;
    let primary_port = primary.port().to_string();
    // A replica writes the RDB it syncs from into its directory: the run's own, not the
    // current one (a dump.rdb was once committed from there).
    let dir_text = dir.path().display().to_string();
    let replica = PrivateRedis::start_on(
        spare_port()?,
        &[
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir_text,
            "--replicaof",
            "127.0.0.1",
            &primary_port,
        ],
    )?;
    let mut sentinels = Vec::new();
    for _ in 0..3 {
        let port = spare_port()?;
        let config = dir.path().join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &config,
            format!(
                "sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {SENTINEL_MASTER} 10000\n\
                 sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let config = config.display().to_string();
        sentinels.push(PrivateRedis::start_on(port, &[&config, "--sentinel"])?);
    }
    let sentinel_ports: Vec<u16> = sentinels.iter().map(PrivateRedis::port).collect();
    wait_for(
        Duration::from_secs(30),
        "the Sentinels did not agree on the primary and its replica",
        || {
            sentinel_ports
                .iter()
                .all(|port| sentinel_settled(*port, &primary_port))
                && cli(replica.port(), &["INFO", "replication"])
                    .is_ok_and(|info| info.contains("master_link_status:up"))
        },
    )?;
    let setting = sentinel_ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut env = server_env(("REDIS_SENTINELS", &setting));
    env.push(("REDIS_SENTINEL_MASTER", SENTINEL_MASTER));
    let _server = start_server(SENTINEL, BENCH_DATABASE, &env)?;
    ensure_on_redis(SENTINEL)?;
    let paths: Vec<&str> = crate::bench::READS.iter().map(|(_, path)| *path).collect();
    for path in &paths {
        warm(SENTINEL, path)?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|n| {
            let stop = stop.clone();
            let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
            std::thread::spawn(move || read_until(&stop, &paths, n))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    primary.kill();
    let mut promoted = None;
    let mut degraded = None;
    let mut status_back = None;
    let watched = wait_for(FAILOVER_WITHIN, "Redis did not serve again", || {
        if promoted.is_none()
            && cli(replica.port(), &["ROLE"]).is_ok_and(|role| role.starts_with("master"))
        {
            promoted = Some(killed.elapsed());
        }
        if let Ok(status) = cache_status(SENTINEL) {
            let serving = status["backend"] == "redis" && status["degraded"] == false;
            if !serving && degraded.is_none() {
                degraded = Some(killed.elapsed());
            }
            if serving && promoted.is_some() && status_back.is_none() {
                status_back = Some(killed.elapsed());
            }
        }
        status_back.is_some()
    });
    if watched.is_ok() {
        std::thread::sleep(AFTERWARDS);
    }
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for reader in readers {
        outcomes.extend(reader.join().map_err(|_| "a reader panicked")?);
    }
    watched?;
    summarise(
        killed,
        &outcomes,
        [promoted, degraded, status_back].map(|t| t.map(|d| d.as_secs_f64())),
    )
}

/// Whether the Sentinel on `port` names the primary on `primary_port`, knows its replica and
/// the two other Sentinels.
fn sentinel_settled(port: u16, primary_port: &str) -> bool {
    let Ok(printed) = cli(port, &["SENTINEL", "MASTER", SENTINEL_MASTER]) else {
        return false;
    };
    let lines: Vec<&str> = printed.lines().collect();
    let field = |name: &str| {
        lines
            .chunks(2)
            .find(|pair| pair.first() == Some(&name))
            .and_then(|pair| pair.get(1).copied())
    };
    field("port") == Some(primary_port)
        && field("flags") == Some("master")
        && field("num-slaves") == Some("1")
        && field("num-other-sentinels") == Some("2")
}

/// Reads `paths` in turn on a keep-alive connection (a new one after a failed request) until
/// `stop`, starting at the `first`th.
fn read_until(stop: &AtomicBool, paths: &[String], first: usize) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut stream: Option<BufReader<TcpStream>> = None;
    let mut n = first;
    while !stop.load(Ordering::Relaxed) {
        let path = &paths[n % paths.len()];
        n += 1;
        let sent = Instant::now();
        if stream.is_none() {
            stream = connect(SENTINEL).ok();
        }
        let answer = stream
            .as_mut()
            .and_then(|s| exchange(s, "GET", path, "", "").ok());
        if answer.is_none() {
            stream = None;
        }
        outcomes.push(Outcome {
            sent,
            answered: Instant::now(),
            answer: answer.map(|a| {
                let cache = a.header("x-cache").unwrap_or("none").to_owned();
                (a.status, cache)
            }),
        });
    }
    outcomes
}

fn summarise(
    killed: Instant,
    outcomes: &[Outcome],
    [promoted, degraded, status_back]: [Option<f64>; 3],
) -> Result<Failover, String> {
    let after_kill: Vec<&Outcome> = outcomes.iter().filter(|o| o.sent >= killed).collect();
    let first_redis = after_kill
        .iter()
        .filter(|o| matches!(&o.answer, Some((_, cache)) if cache == "HIT"))
        .map(|o| o.answered)
        .min()
        .ok_or("no read was a Redis hit after the kill")?;
    let mut blackout_answers: Vec<(String, usize)> = Vec::new();
    for outcome in after_kill.iter().filter(|o| o.answered < first_redis) {
        let label = match &outcome.answer {
            Some((status, cache)) => format!("{status} {cache}"),
            None => "no answer".to_owned(),
        };
        match blackout_answers.iter_mut().find(|(l, _)| *l == label) {
            Some((_, count)) => *count += 1,
            None => blackout_answers.push((label, 1)),
        }
    }
    let failover = Failover {
        promoted: promoted.ok_or("the replica was never promoted")?,
        degraded,
        status_back: status_back.ok_or("the status never said Redis again")?,
        first_redis_answer: first_redis.duration_since(killed).as_secs_f64(),
        blackout_answers,
        reads: after_kill.len(),
        non_2xx: after_kill
            .iter()
            .filter(|o| matches!(o.answer, Some((status, _)) if !(200..300).contains(&status)))
            .count(),
        transport_errors: after_kill.iter().filter(|o| o.answer.is_none()).count(),
    };
    println!(
        "sentinel failover: promoted after {:.2} s, status degraded after {}, back on Redis after {:.2} s; first Redis-served answer {:.2} s after the kill ({:.2} s after the promotion); {} reads after the kill, {} non-2xx, {} without an answer; before the first Redis answer: {:?}",
        failover.promoted,
        failover.degraded_text(),
        failover.status_back,
        failover.first_redis_answer,
        failover.first_redis_answer - failover.promoted,
        failover.reads,
        failover.non_2xx,
        failover.transport_errors,
        failover.blackout_answers
    );
    Ok(failover)
}

fn write_report(
    shares: &[Share],
    failover: &Failover,
    [load_before, load_after]: [&str; 2],
) -> Result<(), String> {
    let mut table = String::from(
        "| read | standalone req/s | cluster req/s | cluster ÷ standalone | fallbacks to memory during the pair |\n|---|---:|---:|---:|---:|\n",
    );
    for share in shares {
        table.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} % | {} |\n",
            share.name,
            share.standalone,
            share.cluster,
            share.cluster / share.standalone * 100.0,
            share.fallbacks
        ));
    }
    let answers = failover
        .blackout_answers
        .iter()
        .map(|(label, count)| format!("{count} × `{label}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let section = format!(
        "<!-- bench:topologies:start -->\nMeasured {} on {} with `cargo xtask bench-topologies`: release build over \
PostgreSQL 15 (517 tickers × 504 trading days), Redis 7 servers of the task's own on loopback, every server \
with the first tier off (`CACHE_LOCAL_TTL=0`, so every hit is a Redis round trip) and \
`REDIS_COMMAND_TIMEOUT_MS={COMMAND_TIMEOUT_MS}`. Load average (1 min) of the shared machine at the start and \
the end: {load_before} and {load_after}.\n\n\
**Hits on a Redis Cluster** of {PRIMARIES} primaries (`redis-cli --cluster create`, no replicas) against a \
standalone `redis-server`, one server on each, both running throughout: wrk, 2 threads, {CONNECTIONS} \
connections, {ROUNDS} rounds of {SECONDS} s per read, each round standalone then cluster, the req/s the mean of \
the rounds. Target: ≥ 85 % of standalone.\n\n\
{table}\n\
**Sentinel failover**: a primary, a replica and three Sentinels (`down-after-milliseconds {DOWN_AFTER_MS}`, \
quorum 2); the server on them (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`) under {READERS} keep-alive \
connections reading the ten cached reads above in turn; the primary killed with SIGKILL after 2 s of load. With \
the first tier off the in-process memory keeps nothing while it stands in, so an `X-Cache: HIT` after the kill \
is an answer the promoted replica served. Targets: no non-2xx on cached reads; Redis serving again within 5 s \
of the promotion.\n\n\
| figure | value |\n|---|---:|\n\
| kill → replica promoted (`ROLE` says master) | {:.2} s |\n\
| kill → `/api/cache/status` says `degraded: true` | {} |\n\
| kill → `/api/cache/status` says `backend: redis`, `degraded: false` again | {:.2} s |\n\
| kill → first Redis-served answer (`X-Cache: HIT`) | {:.2} s |\n\
| promotion → first Redis-served answer | {:.2} s |\n\
| reads sent after the kill (through {:.0} s after Redis served again) | {} |\n\
| of them non-2xx | {} |\n\
| of them without an answer (connection failed) | {} |\n\n\
The answers between the kill and the first Redis-served one: {answers}.\n<!-- bench:topologies:end -->",
        today(),
        machine(),
        failover.promoted,
        failover.degraded_text(),
        failover.status_back,
        failover.first_redis_answer,
        failover.first_redis_answer - failover.promoted,
        AFTERWARDS.as_secs_f64(),
        failover.reads,
        failover.non_2xx,
        failover.transport_errors,
    );
    crate::replace_section("docs/benchmarks.md", "# Benchmarks", &section)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read sent `sent_ms` after `base` and answered 1 ms later with `answer`.
    fn outcome(base: Instant, sent_ms: u64, answer: Option<(u16, &str)>) -> Outcome {
        let sent = base + Duration::from_millis(sent_ms);
        Outcome {
            sent,
            answered: sent + Duration::from_millis(1),
            answer: answer.map(|(status, cache)| (status, cache.to_owned())),
        }
    }

    #[test]
    fn the_blackout_ends_at_the_first_hit_sent_after_the_kill() {
        let base = Instant::now();
        let killed = base + Duration::from_millis(100);
        let outcomes = [
            // Before the kill: a hit that does not end anything.
            outcome(base, 50, Some((200, "HIT"))),
            outcome(base, 150, Some((200, "BYPASS"))),
            outcome(base, 200, None),
            outcome(base, 300, Some((503, "BYPASS"))),
            outcome(base, 400, Some((200, "MISS"))),
            outcome(base, 1_100, Some((200, "HIT"))),
            outcome(base, 1_200, Some((200, "HIT"))),
        ];
        let failover =
            summarise(killed, &outcomes, [Some(0.5), Some(0.01), Some(1.2)]).expect("summarised");
        assert!((failover.first_redis_answer - 1.001).abs() < 1e-6);
        assert_eq!(failover.reads, 6);
        assert_eq!(failover.non_2xx, 1);
        assert_eq!(failover.transport_errors, 1);
        assert_eq!(
            failover.blackout_answers,
            [
                ("200 BYPASS".to_owned(), 1),
                ("no answer".to_owned(), 1),
                ("503 BYPASS".to_owned(), 1),
                ("200 MISS".to_owned(), 1),
            ]
        );
    }

    #[test]
    fn a_failover_with_no_redis_hit_after_the_kill_is_an_error() {
        let base = Instant::now();
        let outcomes = [
            outcome(base, 0, Some((200, "HIT"))),
            outcome(base, 200, Some((200, "MISS"))),
        ];
        let killed = base + Duration::from_millis(100);
        assert!(summarise(killed, &outcomes, [Some(0.5), None, Some(1.0)]).is_err());
    }
}
