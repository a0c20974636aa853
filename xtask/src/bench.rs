//! `cargo xtask bench [--scale small|large]`: the release server over the local PostgreSQL,
//! seeded with the 517-company universe × 504 trading days (`small`, the default) or 5,000
//! tickers × 1,260 days (`large`, synthetic companies beyond the universe), measured over real
//! HTTP on loopback.
//!
//! It measures, per read, the latency of uncached answers (`CACHE_BACKEND=none`: every request
//! computes from the database), of cold misses (200 distinct keys per family, each asked once,
//! on a fresh memory cache) and of cache hits (`CACHE_BACKEND=memory`), one keep-alive
//! connection, requests one after another; then, with Redis as the cache, hit throughput and
//! latency at 64 connections with wrk (installed from Debian's packages when missing) beside
//! the same server's `/health` as the reference, with the in-process first tier on and off.
//! It rewrites the figures of the scale in `docs/benchmarks.md`, and ends with
//! `cargo xtask bench-quotes` (a batch quote against a detail), `bench-compression` (compressed
//! hits against nginx), `bench-topologies` (Cluster hits, a Sentinel failover) and
//! `bench-writes` (a write's latency as Redis fills up), each over the small data set. Bounded: a fixed number of
//! requests or seconds per read, and the server is stopped at the end.

use std::io::BufReader;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{
    self, connect, ensure_on_redis, machine, memory_kib, percentile, prepare, request,
    start_server, today, Server,
};

const ADDR: &str = "127.0.0.1:18080";
const REQUESTS: usize = 200;
/// Distinct cold keys asked per family.
const COLD_KEYS: usize = 200;

/// How much data the benchmark runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Small,
    Large,
}

impl Scale {
    fn parse(args: &[String]) -> Result<Self, String> {
        match args {
            [] => Ok(Self::Small),
            [flag, value] if flag == "--scale" && value == "small" => Ok(Self::Small),
            [flag, value] if flag == "--scale" && value == "large" => Ok(Self::Large),
            _ => Err("usage: cargo xtask bench [--scale small|large]".into()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Large => "large",
        }
    }

    fn database(self) -> &'static str {
        match self {
            Self::Small => harness::BENCH_DATABASE,
            Self::Large => "stockpile_bench_large",
        }
    }

    /// `stockpile seed` options beyond the defaults (517 tickers × 504 days).
    fn seed_args(self) -> &'static [&'static str] {
        match self {
            Self::Small => &[],
            Self::Large => &["--tickers", "5000", "--days", "1260"],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Small => "517 tickers × 504 trading days (260,568 bars)",
            Self::Large => "5,000 tickers × 1,260 trading days (6,300,000 bars; synthetic companies beyond the 517 of the universe)",
        }
    }
}

/// The reads measured, with the query a dashboard typically sends.
pub(crate) const READS: &[(&str, &str)] = &[
    ("list (default)", "/api/stocks"),
    (
        "list (sort=change_percent desc)",
        "/api/stocks?sort=change_percent&order=desc&page_size=50",
    ),
    ("list (q=inc, sort=name)", "/api/stocks?q=inc&sort=name"),
    ("detail", "/api/stocks/AAPL"),
    ("history (1y daily)", "/api/stocks/AAPL/history"),
    (
        "history (2y weekly)",
        "/api/stocks/AAPL/history?from=2023-11-01&interval=1w",
    ),
    ("top movers (gainers)", "/api/stocks/top?metric=gainers"),
    (
        "top movers (active)",
        "/api/stocks/top?metric=active&limit=100",
    ),
    ("leaderboard (1m)", "/api/stocks/leaderboard/top?period=1m"),
    (
        "leaderboard (1y, sector)",
        "/api/stocks/leaderboard/top?period=1y&sector=information%20technology",
    ),
];

fn start(scale: Scale, cache_backend: &str, local_ttl: &str) -> Result<Server, String> {
    start_server(
        ADDR,
        scale.database(),
        &[
            ("CACHE_BACKEND", cache_backend),
            ("CACHE_KEY_PREFIX", "stockpile-bench:"),
            ("CACHE_LOCAL_TTL", local_ttl),
        ],
    )
}

/// p50 and p99 of `REQUESTS` sequential requests, after a few to warm up.
fn measure(path: &str) -> Result<(Duration, Duration), String> {
    let mut stream = connect(ADDR)?;
    for _ in 0..5 {
        request(&mut stream, "GET", path, "", "")?;
    }
    time_each(&mut stream, &vec![path.to_owned(); REQUESTS])
}

/// p50 and p99 of one request to each of `paths`, one after another on `stream`; any answer
/// but 200 fails the measurement.
fn time_each(
    stream: &mut BufReader<TcpStream>,
    paths: &[String],
) -> Result<(Duration, Duration), String> {
    let mut samples = Vec::with_capacity(paths.len());
    for path in paths {
        let started = Instant::now();
        let (status, _) = request(stream, "GET", path, "", "")?;
        samples.push(started.elapsed());
        if status != 200 {
            return Err(format!("{path} answered {status}"));
        }
    }
    samples.sort();
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

pub fn bench(args: &[String]) -> Result<(), String> {
    let scale = Scale::parse(args)?;
    prepare(scale.database(), scale.seed_args())?;

    let mut rows = Vec::new();
    {
        let _server = start(scale, "none", "5")?;
        for (name, path) in READS {
            let (p50, p99) = measure(path)?;
            println!(
                "uncached {name:<34} p50 {:>7} ms  p99 {:>7} ms",
                ms(p50),
                ms(p99)
            );
            rows.push((name, path, p50, p99));
        }
    }
    let cold = {
        let _server = start(scale, "memory", "5")?;
        let mut cold = Vec::new();
        for (family, paths) in cold_paths()? {
            let (p50, p99) = time_each(&mut connect(ADDR)?, &paths)?;
            println!(
                "cold miss {family:<33} p50 {:>7} ms  p99 {:>7} ms  ({} keys)",
                ms(p50),
                ms(p99),
                paths.len()
            );
            cold.push((family, paths.len(), p50, p99));
        }
        cold
    };
    let mut hits = Vec::new();
    {
        let _server = start(scale, "memory", "5")?;
        for (name, path) in READS {
            let (p50, p99) = measure(path)?;
            println!(
                "hit      {name:<34} p50 {:>7} ms  p99 {:>7} ms",
                ms(p50),
                ms(p99)
            );
            hits.push((p50, p99));
        }
    }
    let throughput = {
        let server = start(scale, "redis", "5")?;
        ensure_on_redis(ADDR)?;
        let mut figures = vec![(
            "/health (reference)".to_owned(),
            wrk("/health", 64)?,
            wrk("/health", 4)?.2,
        )];
        for (name, path) in READS {
            let figure = wrk(path, 64)?;
            let p99_at_4 = wrk(path, 4)?.2;
            println!(
                "redis hit {name:<33} {:>9.0} req/s  p50 {:>6}  p99 {:>6}  p99 at 4 connections {p99_at_4}",
                figure.0, figure.1, figure.2
            );
            figures.push(((*name).to_owned(), figure, p99_at_4));
        }
        let peak = peak_resident_mib(&server);
        println!("peak resident memory of the server: {peak}");
        (figures, peak)
    };
    // `CACHE_LOCAL_TTL=0`: entries put in the first tier expire at once, so every hit is a
    // Redis round trip.
    let without_first_tier = {
        let _server = start(scale, "redis", "0")?;
        ensure_on_redis(ADDR)?;
        let mut rps = vec![wrk("/health", 64)?.0];
        for (name, path) in READS {
            let figure = wrk(path, 64)?;
            println!("redis hit, no L1 {name:<26} {:>9.0} req/s", figure.0);
            rps.push(figure.0);
        }
        rps
    };
    write_report(
        scale,
        &rows,
        &cold,
        &hits,
        &throughput.0,
        &without_first_tier,
        &throughput.1,
    )?;
    crate::quotes_bench::bench_quotes(&[])?;
    crate::compression_bench::bench_compression(&[])?;
    crate::topology_bench::bench_topologies(&[])?;
    // Last, since it fills a Redis of its own with a million keys.
    crate::write_bench::bench_writes(&[])
}

/// `COLD_KEYS` distinct paths per family, none asked before on a fresh server: list pages of
/// every size, the details and histories of as many tickers, movers and leaderboards of every
/// metric or period and limit.
fn cold_paths() -> Result<Vec<(&'static str, Vec<String>)>, String> {
    let mut stream = connect(ADDR)?;
    // Sorted by name: a key of its own, so that no list page below is warm.
    let (status, body) = request(
        &mut stream,
        "GET",
        "/api/stocks?page_size=200&sort=name",
        "",
        "",
    )?;
    if status != 200 {
        return Err(format!("the ticker list answered {status}"));
    }
    let list: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let tickers: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["ticker"].as_str().map(str::to_owned))
        .collect();
    let ranked = |base: &str, name: &str, values: &[&str]| -> Vec<String> {
        values
            .iter()
            .flat_map(|value| {
                (1..=100).map(move |limit| format!("{base}?{name}={value}&limit={limit}"))
            })
            .take(COLD_KEYS)
            .collect()
    };
    Ok(vec![
        (
            "list (every page_size)",
            (1..=COLD_KEYS)
                .map(|n| format!("/api/stocks?page_size={n}"))
                .collect(),
        ),
        (
            "detail (distinct tickers)",
            tickers.iter().map(|t| format!("/api/stocks/{t}")).collect(),
        ),
        (
            "history (distinct tickers, 1y daily)",
            tickers
                .iter()
                .map(|t| format!("/api/stocks/{t}/history"))
                .collect(),
        ),
        (
            "top movers (metric × limit)",
            ranked(
                "/api/stocks/top",
                "metric",
                &["gainers", "losers", "active"],
            ),
        ),
        (
            "leaderboard (period × limit)",
            ranked(
                "/api/stocks/leaderboard/top",
                "period",
                &["1w", "1m", "3m", "6m", "1y", "ytd"],
            ),
        ),
    ])
}

/// The server's peak resident set (`VmHWM`), as Linux reports it.
fn peak_resident_mib(server: &Server) -> String {
    memory_kib(server, "VmHWM").map_or_else(
        || "unknown".into(),
        |kb| format!("{:.0} MiB", kb as f64 / 1024.0),
    )
}

/// [`harness::wrk`] against the bench's server.
fn wrk(path: &str, connections: u32) -> Result<(f64, String, String), String> {
    harness::wrk(ADDR, path, connections)
}

/// A read's name, its 64-connection (req/s, p50, p99) and its p99 at 4 connections.
type Throughput = (String, (f64, String, String), String);

/// A cold-miss family, how many keys were asked, p50 and p99.
type ColdMisses = (&'static str, usize, Duration, Duration);

fn write_report(
    scale: Scale,
    rows: &[(&&str, &&str, Duration, Duration)],
    cold: &[ColdMisses],
    hits: &[(Duration, Duration)],
    throughput: &[Throughput],
    without_first_tier: &[f64],
    peak_resident: &str,
) -> Result<(), String> {
    let date = today();
    let mut table = String::from(
        "| read | path | uncached p50 (ms) | uncached p99 (ms) | hit p50 (ms) | hit p99 (ms) |\n|---|---|---:|---:|---:|---:|\n",
    );
    for ((name, path, p50, p99), (hit50, hit99)) in rows.iter().zip(hits) {
        table.push_str(&format!(
            "| {name} | `{path}` | {} | {} | {} | {} |\n",
            ms(*p50),
            ms(*p99),
            ms(*hit50),
            ms(*hit99)
        ));
    }
    let mut misses = String::from(
        "| family | distinct keys | cold miss p50 (ms) | cold miss p99 (ms) |\n|---|---:|---:|---:|\n",
    );
    for (family, keys, p50, p99) in cold {
        misses.push_str(&format!(
            "| {family} | {keys} | {} | {} |\n",
            ms(*p50),
            ms(*p99)
        ));
    }
    let reference = throughput.first().map_or(1.0, |(_, (rps, _, _), _)| *rps);
    let reference_without = without_first_tier.first().copied().unwrap_or(1.0);
    let mut load = String::from(
        "| read | hit req/s (64 conn.) | share of /health | p50 (64) | p99 (64) | p99 (4 conn.) | hit req/s, no L1 | share, no L1 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for ((name, (rps, p50, p99), p99_at_4), rps_without) in
        throughput.iter().zip(without_first_tier)
    {
        load.push_str(&format!(
            "| {name} | {rps:.0} | {:.0} % | {p50} | {p99} | {p99_at_4} | {rps_without:.0} | {:.0} % |\n",
            rps / reference * 100.0,
            rps_without / reference_without * 100.0
        ));
    }
    let (start_marker, end_marker) = match scale {
        Scale::Small => ("<!-- bench:start -->", "<!-- bench:end -->"),
        Scale::Large => ("<!-- bench:large:start -->", "<!-- bench:large:end -->"),
    };
    let section = format!(
        "{start_marker}\nMeasured {date} on {} with `cargo xtask bench --scale {}`: release build, PostgreSQL 15 on loopback, \
{}, one keep-alive connection, {REQUESTS} sequential requests per read \
after 5 warm-up requests. *Uncached* runs the server with `CACHE_BACKEND=none`, so every request computes its \
answer from the database; *hit* runs it with `CACHE_BACKEND=memory`, so every request after the first is served \
from the cache. Latency is measured by the client and includes the HTTP round trip.\n\n{table}\n\
*Cold misses*: a fresh server with `CACHE_BACKEND=memory`, one request to each of {COLD_KEYS} distinct keys per \
family, none asked before, so each is a miss that loads from the database, stores and answers.\n\n{misses}\nHit throughput with Redis as the cache (`CACHE_BACKEND=redis`, local Redis 7 on loopback, with the default in-process first tier in front of it, so a hot key is served without a Redis round trip): wrk, 2 threads, \
64 connections, 5 s per read, on the same 2-core machine as the server (the load generator takes its share), \
against the same server's `/health` as the reference; the last column is a second 5 s run at 4 connections. \
Peak resident memory of the server over the whole Redis run (`VmHWM`, default cache bounds): {peak_resident}. \
The *no L1* columns are a second server with `CACHE_LOCAL_TTL=0`, whose first-tier entries expire at once, so every \
hit is a Redis round trip; its share is of the `/health` of that same run.\n\n{load}{end_marker}",
        machine(),
        scale.name(),
        scale.describe()
    );
    crate::replace_section("docs/benchmarks.md", "# Benchmarks", &section)
}
