//! `cargo xtask bench-quotes`: what a batch quote costs against a single detail, in one run so
//! that the ratios hold. The release server over the bench's PostgreSQL (the 517-company
//! universe), once per cache set-up: in-process memory, and a private Redis with the first tier
//! off (`CACHE_LOCAL_TTL=0`, so every entry of the batch comes from Redis in one `MGET`).
//!
//! - *Hits*: `GET /api/quotes` of 100 tickers and `GET /api/stocks/AAPL`, alternately,
//!   `SAMPLES` times each on one keep-alive connection, every answer `X-Cache: HIT`.
//! - *Cold*: before each sample the whole cache is cleared through the admin API
//!   (`DELETE /api/cache`), so the batch loads its 100 tickers and the detail its one ticker
//!   from the database; batch and detail alternate, every answer `X-Cache: MISS`.

use std::io::BufReader;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{
    connect, ensure_on_redis, exchange, get_json, load_average, machine, percentile, prepare,
    start_server, today, BENCH_DATABASE,
};
use crate::write_bench::PrivateRedis;

const ADDR: &str = "127.0.0.1:18230";
const PREFIX: &str = "stockpile-bench-quotes:";
const TOKEN: &str = "bench-quotes-admin-token-0123456789";
const DETAIL: &str = "/api/stocks/AAPL";
const BATCH_TICKERS: usize = 100;
/// Samples of each read per measurement.
const SAMPLES: usize = 200;
/// Cold samples of each read: each one clears the cache first.
const COLD_SAMPLES: usize = 100;

/// p50 and p99 of the batch and of the detail.
struct Pair {
    batch: [Duration; 2],
    detail: [Duration; 2],
}

impl Pair {
    fn ratio(&self, index: usize) -> f64 {
        self.batch[index].as_secs_f64() / self.detail[index].as_secs_f64()
    }
}

/// One cache set-up's figures: hits, then cold.
struct Setup {
    name: &'static str,
    hits: Pair,
    cold: Pair,
    batch_bytes: usize,
}

pub fn bench_quotes(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: cargo xtask bench-quotes".into());
    }
    prepare(BENCH_DATABASE, &[])?;
    let load_before = load_average();
    let redis = PrivateRedis::start()?;
    let redis_url = redis.url();
    let setups: [(&'static str, Vec<(&str, &str)>); 2] = [
        (
            "memory (`CACHE_BACKEND=memory`)",
            vec![("CACHE_BACKEND", "memory")],
        ),
        (
            "Redis, first tier off (`CACHE_BACKEND=redis`, `CACHE_LOCAL_TTL=0`)",
            vec![
                ("CACHE_BACKEND", "redis"),
                ("REDIS_URL", redis_url.as_str()),
                ("CACHE_LOCAL_TTL", "0"),
            ],
        ),
    ];
    let mut figures = Vec::new();
    for (name, backend) in setups {
        let mut env = vec![("CACHE_KEY_PREFIX", PREFIX), ("ADMIN_TOKEN", TOKEN)];
        env.extend(backend);
        let _server = start_server(ADDR, BENCH_DATABASE, &env)?;
        if env.contains(&("CACHE_BACKEND", "redis")) {
            ensure_on_redis(ADDR)?;
        }
        let mut stream = connect(ADDR)?;
        let batch = quotes_path(&mut stream, BATCH_TICKERS)?;
        let (hits, batch_bytes) = hits(&mut stream, &batch)?;
        let cold = cold(&mut stream, &batch)?;
        for (what, pair) in [("hit", &hits), ("cold", &cold)] {
            println!(
                "{name}: {what} batch of {BATCH_TICKERS} p50 {} ms p99 {} ms, detail p50 {} ms p99 {} ms: {:.2}× at p50, {:.2}× at p99",
                ms(pair.batch[0]),
                ms(pair.batch[1]),
                ms(pair.detail[0]),
                ms(pair.detail[1]),
                pair.ratio(0),
                pair.ratio(1)
            );
        }
        figures.push(Setup {
            name,
            hits,
            cold,
            batch_bytes,
        });
    }
    write_report(&figures, [&load_before, &load_average()])
}

/// `/api/quotes` of the first `count` tickers of the list.
pub(crate) fn quotes_path(
    stream: &mut BufReader<TcpStream>,
    count: usize,
) -> Result<String, String> {
    let list = get_json(stream, &format!("/api/stocks?page_size={count}"))?;
    let tickers: Vec<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["ticker"].as_str())
        .collect();
    if tickers.len() != count {
        return Err(format!(
            "the list has {} tickers, not {count}",
            tickers.len()
        ));
    }
    Ok(format!("/api/quotes?tickers={}", tickers.join(",")))
}

/// The time of one `GET path`, which must answer 200 with `X-Cache: expected`; and the body's
/// length.
fn timed(
    stream: &mut BufReader<TcpStream>,
    path: &str,
    expected: &str,
) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let answer = exchange(stream, "GET", path, "", "")?;
    let took = started.elapsed();
    let cache = answer.header("x-cache").unwrap_or("none");
    if answer.status != 200 || cache != expected {
        return Err(format!(
            "{path} answered {} with X-Cache {cache}, not 200 {expected}",
            answer.status
        ));
    }
    Ok((took, answer.body.len()))
}

/// Alternate batch and detail hits, after a few of each to warm up.
fn hits(stream: &mut BufReader<TcpStream>, batch: &str) -> Result<(Pair, usize), String> {
    for _ in 0..5 {
        exchange(stream, "GET", batch, "", "")?;
        exchange(stream, "GET", DETAIL, "", "")?;
    }
    let mut batches = Vec::with_capacity(SAMPLES);
    let mut details = Vec::with_capacity(SAMPLES);
    let mut batch_bytes = 0;
    for _ in 0..SAMPLES {
        let (took, bytes) = timed(stream, batch, "HIT")?;
        batches.push(took);
        batch_bytes = bytes;
        details.push(timed(stream, DETAIL, "HIT")?.0);
    }
    Ok((pair(batches, details), batch_bytes))
}

/// Alternate batch and detail misses, each after the cache is cleared.
fn cold(stream: &mut BufReader<TcpStream>, batch: &str) -> Result<Pair, String> {
    let mut batches = Vec::with_capacity(COLD_SAMPLES);
    let mut details = Vec::with_capacity(COLD_SAMPLES);
    for _ in 0..COLD_SAMPLES {
        clear(stream)?;
        batches.push(timed(stream, batch, "MISS")?.0);
        clear(stream)?;
        details.push(timed(stream, DETAIL, "MISS")?.0);
    }
    Ok(pair(batches, details))
}

fn clear(stream: &mut BufReader<TcpStream>) -> Result<(), String> {
    let headers = format!("Authorization: Bearer {TOKEN}\r\n");
    let answer = exchange(stream, "DELETE", "/api/cache", &headers, "")?;
    if answer.status == 200 {
        Ok(())
    } else {
        Err(format!("DELETE /api/cache answered {}", answer.status))
    }
}

fn pair(mut batches: Vec<Duration>, mut details: Vec<Duration>) -> Pair {
    batches.sort();
    details.sort();
    let figures = |sorted: &[Duration]| [0.5, 0.99].map(|p| percentile(sorted, p));
    Pair {
        batch: figures(&batches),
        detail: figures(&details),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn write_report(setups: &[Setup], [load_before, load_after]: [&str; 2]) -> Result<(), String> {
    let mut table = String::from(
        "| cache | answers | batch of 100 p50 / p99 (ms) | detail p50 / p99 (ms) | batch ÷ detail, p50 | batch ÷ detail, p99 | target |\n|---|---|---:|---:|---:|---:|---|\n",
    );
    for setup in setups {
        for (what, pair, target) in [
            ("hits", &setup.hits, 3.0),
            ("cold (cache cleared before each)", &setup.cold, 2.0),
        ] {
            let met = if pair.ratio(0) < target {
                "met"
            } else {
                "missed"
            };
            table.push_str(&format!(
                "| {} | {what} | {} / {} | {} / {} | {:.2}× | {:.2}× | < {target}× at p50: {met} |\n",
                setup.name,
                ms(pair.batch[0]),
                ms(pair.batch[1]),
                ms(pair.detail[0]),
                ms(pair.detail[1]),
                pair.ratio(0),
                pair.ratio(1),
            ));
        }
    }
    let batch_bytes = setups.first().map_or(0, |setup| setup.batch_bytes);
    let section = format!(
        "<!-- bench:quotes:start -->\nMeasured {} on {} with `cargo xtask bench-quotes`: release build, PostgreSQL 15 on \
loopback (517 tickers × 504 trading days), one keep-alive connection, requests one after another. \
The batch is `GET /api/quotes` of the first {BATCH_TICKERS} tickers of the list ({batch_bytes} bytes), the detail \
`GET {DETAIL}`; the two alternate, so both see the same moment of a noisy machine. *Hits*: {SAMPLES} of each \
after 5 warm-up requests, every answer `X-Cache: HIT`. *Cold*: {COLD_SAMPLES} of each, the whole cache cleared \
through the admin API (`DELETE /api/cache`) before every sample, so every answer is `X-Cache: MISS`: the batch \
loads its {BATCH_TICKERS} tickers in one database query and stores {BATCH_TICKERS} entries, the detail loads \
and stores one. The Redis is a private `redis-server` on loopback. Latency is measured by the client and \
includes the HTTP round trip. Load average (1 min) of the shared machine at the start and the end: \
{load_before} and {load_after}.\n\n{table}<!-- bench:quotes:end -->",
        today(),
        machine(),
    );
    crate::replace_section("docs/benchmarks.md", "# Benchmarks", &section)
}
