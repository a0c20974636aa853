//! `cargo xtask fleet [--instances N] [--topology standalone|sentinel|cluster] [--seconds N]
//! [--connections N]`: N release servers over one PostgreSQL database and one Redis topology of
//! this run's own, behind nginx with upstream keep-alive, under a bounded mixed load.
//!
//! Through nginx: readers (soak's reads of every cached endpoint, plus watchlist batches of
//! `GET /api/quotes`) and admin invalidations. Straight to one instance after another: a writer
//! that updates the profile of, or uploads a bar to, tickers of its own (`FLEET_TICKERS`). A
//! checker asks every instance directly for the same read and compares what they answer.
//!
//! The run fails on any 5xx or transport error (nginx does not retry on another instance here:
//! `proxy_next_upstream off`, so a kept-alive connection that an instance closes under it shows
//! as a 502); on one body answered with two ETags, or one ETag with two bodies, on any instance;
//! and on a read after an acknowledged write (on any instance directly, or through nginx) that
//! answers what the ticker held before the write. It reports throughput, latency through nginx,
//! and how long after a write's answer every instance served the new data.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{self, Answer, Server};
use crate::soak::{self, Client, Rng, Tally, Universe};

const DATABASE: &str = "stockpile_fleet";
/// Tickers only the fleet's writer writes; the seeded universe is only read.
const FLEET_TICKERS: &[&str] = &["ZZFLEET1", "ZZFLEET2", "ZZFLEET3", "ZZFLEET4"];
/// The day the writer's bars are dated by: the seed's last, so each upload is the latest quote.
const BAR_DATE: &str = "2025-11-21";
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// Every how many writes an admin invalidation goes through nginx.
const INVALIDATE_EVERY: u64 = 5;
/// How long after a write's answer an instance may keep answering the older data before the
/// wait for it stops (the run fails on the first such answer anyway; this bounds the figure).
const VISIBLE_WITHIN: Duration = Duration::from_secs(5);
/// The instances' keep-alive, above nginx's upstream `keepalive_timeout`
/// (`UPSTREAM_IDLE_S`): the balancer closes an idle connection before the instance does, so it
/// never sends a request on one that the instance is closing.
const HTTP_KEEP_ALIVE_S: u64 = 75;
const UPSTREAM_IDLE_S: u64 = 60;

/// A fleet to drive: which binary, over which database and Redis.
pub struct Plan {
    /// The `stockpile` binary the instances run.
    pub binary: String,
    /// A seeded database every instance shares.
    pub database_url: String,
    /// The variables every instance gets besides the fleet's own: the Redis topology's
    /// (`REDIS_URL`, or `REDIS_SENTINELS` and `REDIS_SENTINEL_MASTER`, or
    /// `REDIS_CLUSTER_NODES`) and any others (`CACHE_LOCAL_TTL`, …).
    pub env: Vec<(String, String)>,
    pub instances: usize,
    /// Reading connections through nginx.
    pub readers: usize,
    pub run_for: Duration,
}

/// What a run measured, and every rule it saw broken.
#[derive(Debug)]
pub struct Report {
    /// Empty when every rule held.
    pub failures: Vec<String>,
    pub seconds: f64,
    /// Requests through nginx (reads and invalidations) and straight to the instances (writes
    /// and every check), all answered.
    pub requests: u64,
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
    pub writes: u64,
    pub write_p50_ms: f64,
    pub write_p99_ms: f64,
    /// From a write's answer until every instance had answered the new data.
    pub visible_p50_ms: f64,
    pub visible_p99_ms: f64,
    /// Reads after a write that had to answer the new data (each instance and nginx).
    pub reads_after_writes: u64,
    /// Those that answered the older data instead.
    pub stale_reads: u64,
    /// Answers whose ETag was checked against every other answer with an ETag.
    pub etags_checked: u64,
    /// Reads that the checker asked of every instance.
    pub cross_instance_reads: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_errors: u64,
}

/// nginx, as Debian installs it or as `PATH` finds it.
pub fn nginx_binary() -> Option<String> {
    ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|candidate| {
            Command::new(candidate)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
        .map(str::to_owned)
}

/// nginx in the foreground with a configuration of its own in a directory of its own; stopped,
/// and the directory removed, when dropped.
struct Nginx {
    process: Child,
    dir: PathBuf,
    addr: String,
}

impl Nginx {
    fn start(binary: &str, instances: &[String], token: &str) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("stockpile-fleet-nginx-{}", &token[..12]));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let addr = format!("127.0.0.1:{}", harness::spare_port()?);
        let config = dir.join("nginx.conf");
        std::fs::write(&config, nginx_config(&dir, &addr, instances))
            .map_err(|e| format!("{}: {e}", config.display()))?;
        let process = Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start {binary}: {e}"))?;
        let nginx = Self { process, dir, addr };
        if let Err(why) = harness::wait_for_listener(&nginx.addr, Duration::from_secs(10), "nginx")
        {
            let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
            return Err(format!("{why}\n{log}"));
        }
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One worker in the foreground, every file it writes under `dir`, and an upstream of the
/// instances on kept-alive HTTP/1.1 connections (docker/nginx.conf is the deployment's).
fn nginx_config(dir: &std::path::Path, addr: &str, instances: &[String]) -> String {
    let dir = dir.display();
    let servers: String = instances
        .iter()
        .map(|instance| format!("        server {instance};\n"))
        .collect();
    format!(
        "daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream stockpile {{
{servers}        keepalive 32;
        keepalive_timeout {UPSTREAM_IDLE_S}s;
    }}
    server {{
        listen {addr};
        location / {{
            proxy_pass http://stockpile;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_next_upstream off;
        }}
    }}
}}
"
    )
}

/// The environment of every instance: the topology's variables and the settings they share.
fn instance_env<'a>(plan: &'a Plan, prefix: &'a str, token: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("CACHE_BACKEND", "redis"),
        ("CACHE_KEY_PREFIX", prefix),
        ("ADMIN_TOKEN", token),
    ];
    env.extend(
        plan.env
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    env
}

/// Runs the fleet of `plan` behind nginx for `plan.run_for`; the figures, or every rule that
/// was broken.
pub fn run(plan: &Plan) -> Result<Report, String> {
    let nginx_binary = nginx_binary().ok_or("nginx is not installed (apt-get install nginx)")?;
    let token = soak::fresh_token()?;
    let prefix = format!("stockpile-fleet-{}:", &token[..12]);
    let keep_alive = HTTP_KEEP_ALIVE_S.to_string();
    let mut env = instance_env(plan, &prefix, &token);
    env.push(("HTTP_KEEP_ALIVE_S", &keep_alive));
    let mut instances = Vec::new();
    let mut servers: Vec<Server> = Vec::new();
    for _ in 0..plan.instances {
        let addr = format!("127.0.0.1:{}", harness::spare_port()?);
        servers.push(harness::start_server_from(
            &plan.binary,
            &addr,
            &plan.database_url,
            &env,
        )?);
        instances.push(addr);
    }
    let nginx = Nginx::start(&nginx_binary, &instances, &token)?;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let universe = set_up(&instances, &nginx.addr, &auth)?;
    for addr in &instances {
        harness::ensure_on_redis(addr)?;
    }

    let started = Instant::now();
    let deadline = started + plan.run_for;
    let outcome = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..plan.readers)
            .map(|i| {
                let (universe, addr) = (&universe, nginx.addr.as_str());
                scope.spawn(move || read_loop(i as u64 + 1, addr, deadline, universe))
            })
            .collect();
        let checker = scope.spawn(|| check_loop(&instances, deadline, &universe));
        let writer = scope.spawn(|| write_loop(&instances, &nginx.addr, deadline, &auth));
        let mut outcome = Outcome::default();
        for reader in readers {
            outcome.merge(reader.join().map_err(|_| "a reader panicked")?);
        }
        outcome.merge(checker.join().map_err(|_| "the checker panicked")?);
        outcome.merge(writer.join().map_err(|_| "the writer panicked")?);
        Ok::<_, String>(outcome)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let mut statuses = Vec::new();
    for addr in &instances {
        statuses.push(harness::cache_status(addr)?);
    }
    drop(nginx);
    drop(servers);
    report(outcome, seconds, &statuses)
}

/// The fleet's tickers made afresh with a bar each, an empty cache, and the universe as nginx
/// lists it.
fn set_up(instances: &[String], nginx: &str, auth: &str) -> Result<Universe, String> {
    let mut setup = harness::connect(&instances[0])?;
    let json = format!("{auth}Content-Type: application/json\r\n");
    for (n, ticker) in FLEET_TICKERS.iter().enumerate() {
        let path = format!("/api/stocks/{ticker}");
        harness::request(&mut setup, "DELETE", &path, auth, "")?;
        let steps = [
            ("PUT", path.clone(), profile(ticker, 0)),
            ("POST", format!("{path}/prices"), bar(n as u64)),
        ];
        for (method, path, body) in steps {
            let (status, _) = harness::request(&mut setup, method, &path, &json, &body)?;
            if !(200..300).contains(&status) {
                return Err(format!("setting up: {method} {path} answered {status}"));
            }
        }
    }
    let (status, _) = harness::request(&mut setup, "DELETE", "/api/cache", auth, "")?;
    if status != 200 {
        return Err(format!("clearing the cache answered {status}"));
    }
    soak::universe(&mut harness::connect(nginx)?, FLEET_TICKERS)
}

fn profile(ticker: &str, market_cap: u64) -> String {
    format!(
        r#"{{"name": "Fleet {ticker} Inc.", "exchange": "FLEET", "sector": "Fleet Testing", "market_cap": {market_cap}}}"#
    )
}

/// The close of write `n`'s bar: distinct for every write of a run.
fn close_of(n: u64) -> f64 {
    100.0 + (n % 1_000_000) as f64 / 100.0
}

fn bar(n: u64) -> String {
    let close = close_of(n);
    format!(
        r#"{{"bars": [{{"date": "{BAR_DATE}", "open": {close:.2}, "high": {close:.2}, "low": {close:.2}, "close": {close:.2}, "volume": {n}}}]}}"#
    )
}

/// What the threads met, merged.
#[derive(Default)]
struct Outcome {
    reads: Tally,
    writes: Tally,
    /// Checks and the other requests straight to instances.
    direct: Tally,
    etags: Etags,
    cross_instance_reads: u64,
    visible_us: Vec<u32>,
    reads_after_writes: u64,
    stale_reads: u64,
    violations: Vec<String>,
    violation_count: u64,
}

impl Outcome {
    fn violation(&mut self, what: String) {
        self.violation_count += 1;
        if self.violations.len() < 10 {
            self.violations.push(what);
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.reads.merge(other.reads);
        self.writes.merge(other.writes);
        self.direct.merge(other.direct);
        for conflict in self.etags.merge(other.etags) {
            self.violation(conflict);
        }
        self.cross_instance_reads += other.cross_instance_reads;
        self.visible_us.extend(other.visible_us);
        self.reads_after_writes += other.reads_after_writes;
        self.stale_reads += other.stale_reads;
        self.violation_count += other.violation_count;
        for violation in other.violations {
            if self.violations.len() < 10 {
                self.violations.push(violation);
            }
        }
    }
}

/// Every ETag seen with the body it came with, and each body's ETag: a body has one ETag
/// and an ETag one body, on every instance (API.md: derived from the body alone).
#[derive(Default)]
struct Etags {
    body_of: HashMap<String, (u64, String)>,
    etag_of: HashMap<u64, (String, String)>,
    checked: u64,
}

impl Etags {
    /// Records the ETag of a 200 answer to `what`; a conflict with an earlier answer, named.
    fn record(&mut self, what: &str, answer: &Answer) -> Option<String> {
        let etag = answer.header("etag").filter(|_| answer.status == 200)?;
        let mut hasher = DefaultHasher::new();
        answer.body.hash(&mut hasher);
        self.check(what, etag, hasher.finish())
    }

    fn check(&mut self, what: &str, etag: &str, body: u64) -> Option<String> {
        self.checked += 1;
        let known_body = self
            .body_of
            .entry(etag.to_owned())
            .or_insert_with(|| (body, what.to_owned()));
        if known_body.0 != body {
            return Some(format!(
                "ETag {etag} came with two bodies: {} and {what}",
                known_body.1
            ));
        }
        let known_etag = self
            .etag_of
            .entry(body)
            .or_insert_with(|| (etag.to_owned(), what.to_owned()));
        (known_etag.0 != etag).then(|| {
            format!(
                "one body came with two ETags: {} for {} and {etag} for {what}",
                known_etag.0, known_etag.1
            )
        })
    }

    /// Takes in `other`'s records; the conflicts between the two.
    fn merge(&mut self, other: Etags) -> Vec<String> {
        self.checked += other.checked;
        let mut conflicts = Vec::new();
        for (etag, (body, what)) in other.body_of {
            self.checked -= 1;
            conflicts.extend(self.check(&what, &etag, body));
        }
        conflicts
    }
}

/// A read of every kind soak makes, and now and then a watchlist batch.
fn fleet_read_path(rng: &mut Rng, universe: &Universe) -> String {
    if rng.below(10) == 0 {
        let mut tickers: Vec<&str> = (0..1 + rng.below(20))
            .map(|_| universe.tickers[rng.below(universe.tickers.len())].as_str())
            .collect();
        if rng.below(2) == 0 {
            tickers.push(rng.pick(FLEET_TICKERS));
        }
        format!("/api/quotes?tickers={}", tickers.join(","))
    } else {
        soak::read_path(rng, universe).0
    }
}

fn read_loop(seed: u64, nginx: &str, deadline: Instant, universe: &Universe) -> Outcome {
    let mut rng = Rng(seed);
    let mut client = Client::new(nginx);
    let mut outcome = Outcome::default();
    while Instant::now() < deadline {
        let path = fleet_read_path(&mut rng, universe);
        let answer = client.send("GET", &path, "", "");
        let what = format!("GET {path} through nginx");
        outcome.reads.record(&what, &answer, false);
        if let Ok((answer, _)) = &answer {
            if let Some(conflict) = outcome.etags.record(&what, answer) {
                outcome.violation(conflict);
            }
        }
    }
    outcome
}

/// Asks every instance directly for one read after another, without and with compression.
fn check_loop(instances: &[String], deadline: Instant, universe: &Universe) -> Outcome {
    let mut rng = Rng(0xc4ec);
    let mut clients: Vec<Client> = instances.iter().map(|addr| Client::new(addr)).collect();
    let mut outcome = Outcome::default();
    while Instant::now() < deadline {
        let path = fleet_read_path(&mut rng, universe);
        let encoding = rng.pick(&["", "Accept-Encoding: br, gzip\r\n"]);
        for (client, addr) in clients.iter_mut().zip(instances) {
            let answer = client.send("GET", &path, encoding, "");
            let what = format!("GET {path} ({}) on {addr}", encoding.trim());
            outcome.direct.record(&what, &answer, false);
            if let Ok((answer, _)) = &answer {
                if let Some(conflict) = outcome.etags.record(&what, answer) {
                    outcome.violation(conflict);
                }
            }
        }
        outcome.cross_instance_reads += 1;
    }
    outcome
}

/// What a write set: the field of the ticker's `StockSummary` and its new value.
struct Expected {
    ticker: &'static str,
    field: &'static str,
    value: f64,
}

impl Expected {
    /// Whether `summary` (a detail, or an item of a list or batch) holds the new value.
    fn holds(&self, summary: &serde_json::Value) -> bool {
        summary[self.field]
            .as_f64()
            .is_some_and(|value| (value - self.value).abs() < 1e-6)
    }
}

/// Every `WRITE_EVERY`, a write straight to the next instance in turn; then every instance,
/// directly, and nginx must answer it, and every `INVALIDATE_EVERY` writes an invalidation
/// goes through nginx.
fn write_loop(instances: &[String], nginx: &str, deadline: Instant, auth: &str) -> Outcome {
    let json = format!("{auth}Content-Type: application/json\r\n");
    let mut writers: Vec<Client> = instances.iter().map(|addr| Client::new(addr)).collect();
    let mut readers: Vec<Client> = instances.iter().map(|addr| Client::new(addr)).collect();
    let mut through_nginx = Client::new(nginx);
    let mut outcome = Outcome::default();
    for n in 1_u64.. {
        if Instant::now() >= deadline {
            break;
        }
        let ticker = FLEET_TICKERS[n as usize % FLEET_TICKERS.len()];
        let writer = n as usize % instances.len();
        // Each ticker's writes alternate between a profile and a bar.
        let (method, path, body, expected) = if (n as usize / FLEET_TICKERS.len()).is_multiple_of(2)
        {
            let market_cap = 1_000_000_000 + n;
            (
                "PUT",
                format!("/api/stocks/{ticker}"),
                profile(ticker, market_cap),
                Expected {
                    ticker,
                    field: "market_cap",
                    value: market_cap as f64,
                },
            )
        } else {
            (
                "POST",
                format!("/api/stocks/{ticker}/prices"),
                bar(n),
                Expected {
                    ticker,
                    field: "price",
                    value: close_of(n),
                },
            )
        };
        let what = format!("{method} {path} on {}", instances[writer]);
        let answer = writers[writer].send(method, &path, &json, &body);
        outcome.writes.record(&what, &answer, false);
        if matches!(&answer, Ok((a, _)) if (200..300).contains(&a.status)) {
            let acknowledged = Instant::now();
            see_everywhere(&mut outcome, &mut readers, instances, &what, &expected);
            outcome
                .visible_us
                .push(u32::try_from(acknowledged.elapsed().as_micros()).unwrap_or(u32::MAX));
            see_through_nginx(&mut outcome, &mut through_nginx, &what, &expected);
        }
        if n % INVALIDATE_EVERY == 0 {
            invalidate(&mut outcome, &mut through_nginx, &json, n);
        }
        std::thread::sleep(WRITE_EVERY);
    }
    outcome
}

/// Reads the written ticker's detail on every instance until each answers the new value (or
/// `VISIBLE_WITHIN` passes); an older answer after the write's is a violation.
fn see_everywhere(
    outcome: &mut Outcome,
    readers: &mut [Client],
    instances: &[String],
    write: &str,
    expected: &Expected,
) {
    let path = format!("/api/stocks/{}", expected.ticker);
    let since = Instant::now();
    for (reader, addr) in readers.iter_mut().zip(instances) {
        let what = format!("GET {path} on {addr}");
        let mut first = true;
        while let Some(detail) = read_json(outcome, reader, &what, &path) {
            if first {
                outcome.reads_after_writes += 1;
            }
            if expected.holds(&detail) {
                break;
            }
            if first {
                outcome.stale_reads += 1;
                outcome.violation(format!(
                    "after {write} was answered, {what} answered the older {}: {}",
                    expected.field, detail[expected.field]
                ));
                first = false;
            }
            if since.elapsed() > VISIBLE_WITHIN {
                break;
            }
        }
    }
}

/// The written ticker through nginx, as its detail, in a watchlist batch and in the list.
fn see_through_nginx(outcome: &mut Outcome, client: &mut Client, write: &str, expected: &Expected) {
    let ticker = expected.ticker;
    let paths = [
        format!("/api/stocks/{ticker}"),
        format!("/api/quotes?tickers=AAPL,{ticker}"),
        format!("/api/stocks?q={ticker}"),
    ];
    for path in paths {
        let what = format!("GET {path} through nginx");
        let Some(body) = read_json(outcome, client, &what, &path) else {
            continue;
        };
        outcome.reads_after_writes += 1;
        let summary = body["items"]
            .as_array()
            .and_then(|items| items.iter().find(|item| item["ticker"] == ticker))
            .unwrap_or(&body);
        if !expected.holds(summary) {
            outcome.stale_reads += 1;
            outcome.violation(format!(
                "after {write} was answered, {what} answered the older {}: {}",
                expected.field, summary[expected.field]
            ));
        }
    }
}

/// `GET path` on `client`, tallied with the checks; its JSON body when it answered 200.
fn read_json(
    outcome: &mut Outcome,
    client: &mut Client,
    what: &str,
    path: &str,
) -> Option<serde_json::Value> {
    let answer = client.send("GET", path, "", "");
    outcome.direct.record(what, &answer, false);
    let (answer, _) = answer.ok().filter(|(a, _)| a.status == 200)?;
    if let Some(conflict) = outcome.etags.record(what, &answer) {
        outcome.violation(conflict);
    }
    serde_json::from_slice(&answer.body).ok()
}

/// One of the admin invalidations, in turn: a pattern of lists, of leaderboards, one key.
fn invalidate(outcome: &mut Outcome, client: &mut Client, json: &str, n: u64) {
    let (method, path, body) = match (n / INVALIDATE_EVERY) % 3 {
        0 => (
            "POST",
            "/api/cache/invalidate",
            r#"{"pattern": "stocks:list:*"}"#,
        ),
        1 => (
            "POST",
            "/api/cache/invalidate",
            r#"{"pattern": "leaderboard:*"}"#,
        ),
        _ => ("DELETE", "/api/cache/key/stocks:detail:AAPL", ""),
    };
    let answer = client.send(method, path, json, body);
    // A key that was not there is a 404 by contract.
    let absent = path.starts_with("/api/cache/key/");
    outcome
        .writes
        .record(&format!("{method} {path} through nginx"), &answer, absent);
}

fn ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    f64::from(harness::percentile(sorted_us, p)) / 1000.0
}

fn report(
    mut outcome: Outcome,
    seconds: f64,
    statuses: &[serde_json::Value],
) -> Result<Report, String> {
    for tally in [&mut outcome.reads, &mut outcome.writes, &mut outcome.direct] {
        tally.latencies_us.sort_unstable();
    }
    outcome.visible_us.sort_unstable();
    let counter = |name: &str| {
        statuses
            .iter()
            .map(|status| status[name].as_u64().unwrap_or(0))
            .sum()
    };
    let mut report = Report {
        failures: Vec::new(),
        seconds,
        requests: [&outcome.reads, &outcome.writes, &outcome.direct]
            .iter()
            .map(|tally| tally.requests())
            .sum(),
        read_p50_ms: ms(&outcome.reads.latencies_us, 0.5),
        read_p99_ms: ms(&outcome.reads.latencies_us, 0.99),
        writes: outcome.visible_us.len() as u64,
        write_p50_ms: ms(&outcome.writes.latencies_us, 0.5),
        write_p99_ms: ms(&outcome.writes.latencies_us, 0.99),
        visible_p50_ms: ms(&outcome.visible_us, 0.5),
        visible_p99_ms: ms(&outcome.visible_us, 0.99),
        reads_after_writes: outcome.reads_after_writes,
        stale_reads: outcome.stale_reads,
        etags_checked: outcome.etags.checked,
        cross_instance_reads: outcome.cross_instance_reads,
        cache_hits: counter("hits"),
        cache_misses: counter("misses"),
        cache_errors: counter("errors"),
    };
    let mut failures = Vec::new();
    let tallies = [
        ("reads through nginx", &outcome.reads),
        ("writes and invalidations", &outcome.writes),
        ("reads straight to the instances", &outcome.direct),
    ];
    for (kind, tally) in tallies {
        let server_errors: u64 = tally.unexpected.range(500..).map(|(_, n)| n).sum();
        let other: u64 = tally.unexpected.range(..500).map(|(_, n)| n).sum();
        if server_errors + other + tally.transport_errors > 0 {
            failures.push(format!(
                "{kind}: {server_errors} answers were 5xx, {other} unexpected 4xx, {} transport \
                 errors; first: {}",
                tally.transport_errors,
                tally.first_errors.join("; ")
            ));
        }
    }
    if outcome.violation_count > 0 {
        failures.push(format!(
            "{} answers broke the fleet's rules; first: {}",
            outcome.violation_count,
            outcome.violations.join("; ")
        ));
    }
    for status in statuses {
        if status["backend"] != "redis" || status["degraded"] != false {
            failures.push(format!("an instance was not on Redis at the end: {status}"));
        }
    }
    report.failures = failures;
    Ok(report)
}

struct Options {
    instances: usize,
    topology: String,
    run_for: Duration,
    readers: usize,
    /// `CACHE_LOCAL_TTL` of every instance (0: the first tier off); the default when `None`.
    local_ttl: Option<u64>,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        instances: 3,
        topology: "standalone".into(),
        run_for: Duration::from_secs(60),
        readers: 8,
        local_ttl: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = value.parse::<u64>().ok();
        match (flag.as_str(), number) {
            ("--topology", _)
                if ["standalone", "sentinel", "cluster"].contains(&value.as_str()) =>
            {
                options.topology.clone_from(value);
            }
            ("--instances", Some(n)) if (2..=8).contains(&n) => options.instances = n as usize,
            ("--seconds", Some(n)) if (5..=3600).contains(&n) => {
                options.run_for = Duration::from_secs(n);
            }
            ("--connections", Some(n)) if (1..=64).contains(&n) => options.readers = n as usize,
            ("--local-ttl", Some(n)) if n <= 3600 => options.local_ttl = Some(n),
            _ => {
                return Err(format!(
                    "unknown option or value out of bounds: {flag} {value} (--instances 2–8, \
                     --topology standalone|sentinel|cluster, --seconds 5–3600, \
                     --connections 1–64, --local-ttl 0–3600)"
                ));
            }
        }
    }
    Ok(options)
}

/// The Redis servers of a run, stopped when dropped, and the variables that name them.
enum Topology {
    Standalone(crate::write_bench::PrivateRedis),
    Sentinel(stockpile_test_support::RedisSentinel),
    Cluster(stockpile_test_support::RedisCluster),
}

impl Topology {
    /// Starts `name` on spare loopback ports, as the tests do.
    fn start(name: &str, runtime: &tokio::runtime::Runtime) -> Result<Self, String> {
        let started = match name {
            "standalone" => Some(Self::Standalone(crate::write_bench::PrivateRedis::start()?)),
            "sentinel" => runtime
                .block_on(stockpile_test_support::RedisSentinel::start())
                .map(Self::Sentinel),
            _ => runtime
                .block_on(stockpile_test_support::RedisCluster::start(3, 1))
                .map(Self::Cluster),
        };
        started.ok_or_else(|| format!("could not start a Redis {name} (see above)"))
    }

    fn variables(&self) -> Vec<(String, String)> {
        let pairs = match self {
            Self::Standalone(redis) => vec![("REDIS_URL", redis.url())],
            Self::Sentinel(set) => vec![
                ("REDIS_SENTINELS", set.sentinels_setting()),
                ("REDIS_SENTINEL_MASTER", set.master_name().to_owned()),
            ],
            // Six nodes, the instances and the load share two cores here: room for a slow
            // answer, as the cluster tests give it.
            Self::Cluster(cluster) => vec![
                ("REDIS_CLUSTER_NODES", cluster.nodes_setting()),
                ("REDIS_COMMAND_TIMEOUT_MS", "500".to_owned()),
            ],
        };
        pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }
}

pub fn fleet(args: &[String]) -> Result<(), String> {
    let options = options(args)?;
    if nginx_binary().is_none() {
        return Err("nginx is not installed (apt-get install nginx)".into());
    }
    harness::prepare(DATABASE, &[])?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let topology = Topology::start(&options.topology, &runtime)?;
    let plan = Plan {
        binary: harness::binary(),
        database_url: harness::database_url(DATABASE),
        env: topology
            .variables()
            .into_iter()
            .chain(
                options
                    .local_ttl
                    .map(|ttl| ("CACHE_LOCAL_TTL".to_owned(), ttl.to_string())),
            )
            .collect(),
        instances: options.instances,
        readers: options.readers,
        run_for: options.run_for,
    };
    println!(
        "fleet: {} instances over {DATABASE} (PostgreSQL) and a Redis {} behind nginx, {} read \
         connections, a writer and a checker, for {} s",
        plan.instances,
        options.topology,
        plan.readers,
        plan.run_for.as_secs()
    );
    let report = run(&plan)?;
    drop(topology);
    print_report(&plan, &options, &report);
    if report.failures.is_empty() {
        Ok(())
    } else {
        Err(format!("the fleet failed:\n{}", report.failures.join("\n")))
    }
}

fn print_report(plan: &Plan, options: &Options, r: &Report) {
    let first_tier = options
        .local_ttl
        .map_or("CACHE_LOCAL_TTL default".to_owned(), |ttl| {
            format!("CACHE_LOCAL_TTL={ttl}")
        });
    println!(
        "\nfleet of {} instances, Redis {}, {first_tier}, nginx (upstream keepalive 32), {} read \
         connections + 1 writer + 1 checker, {:.0} s on {}, {}\n",
        plan.instances,
        options.topology,
        plan.readers,
        r.seconds,
        harness::machine(),
        harness::today()
    );
    println!("| figure | value |\n|---|---:|");
    println!(
        "| requests answered (all kinds) | {} ({:.0}/s) |",
        r.requests,
        r.requests as f64 / r.seconds
    );
    println!(
        "| reads through nginx, p50 / p99 | {:.2} / {:.2} ms |",
        r.read_p50_ms, r.read_p99_ms
    );
    println!(
        "| writes straight to an instance, p50 / p99 | {:.2} / {:.2} ms |",
        r.write_p50_ms, r.write_p99_ms
    );
    println!(
        "| from a write's answer to the new data on every instance, p50 / p99 ({} writes) | {:.2} / {:.2} ms |",
        r.writes, r.visible_p50_ms, r.visible_p99_ms
    );
    println!(
        "| reads after a write that answered older data | {} of {} |",
        r.stale_reads, r.reads_after_writes
    );
    println!(
        "| ETags checked (one ETag per body, one body per ETag) | {} ({} reads asked of every instance) |",
        r.etags_checked, r.cross_instance_reads
    );
    println!(
        "| cache hits / misses / errors, all instances | {} / {} / {} |",
        r.cache_hits, r.cache_misses, r.cache_errors
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_body_with_two_etags_or_one_etag_with_two_bodies_is_named() {
        let mut etags = Etags::default();
        assert_eq!(etags.check("a", "\"1\"", 10), None);
        assert_eq!(etags.check("b", "\"1\"", 10), None);
        let two_bodies = etags.check("c", "\"1\"", 11);
        assert!(two_bodies.is_some_and(|c| c.contains("two bodies")));
        let mut other = Etags::default();
        assert_eq!(other.check("d", "\"2\"", 10), None);
        let conflicts = etags.merge(other);
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert!(conflicts[0].contains("two ETags"), "{conflicts:?}");
    }

    #[test]
    fn nginx_keeps_upstream_connections_alive_for_less_than_the_instances_do() {
        const { assert!(UPSTREAM_IDLE_S < HTTP_KEEP_ALIVE_S) };
        let config = nginx_config(
            std::path::Path::new("/tmp/x"),
            "127.0.0.1:1",
            &["127.0.0.1:2".into(), "127.0.0.1:3".into()],
        );
        for line in [
            "server 127.0.0.1:2;",
            "server 127.0.0.1:3;",
            "keepalive 32;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "daemon off;",
        ] {
            assert!(config.contains(line), "{line} is missing:\n{config}");
        }
    }
}
