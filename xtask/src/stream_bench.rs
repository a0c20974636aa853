//! `cargo xtask bench-streams`: what the live-quote streams cost. Two release servers, A and B,
//! over one PostgreSQL database and a private `redis-server` on a spare port:
//!
//! - event latency across instances: one stream of AAPL on B, 1,000 one-bar price uploads of
//!   AAPL on A, one after another; for each, the time from A's answer reaching the client to
//!   the upload's `quote` event reaching the stream's client (negative when the event came
//!   first: A publishes before it answers);
//! - resident memory per idle stream: B's `VmRSS` before and after opening 2,000 streams of one
//!   ticker each (every one past its first event), divided by 2,000;
//! - B's hit throughput (wrk, 64 connections, 5 s, `GET /api/stocks/AAPL`) without and with
//!   those 2,000 idle streams open.
//!
//! The uploads put back AAPL's latest bar as the database holds it, so the data never change.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{
    connect, ensure_on_redis, machine, memory_kib, percentile, prepare, request, start_server,
    today, wrk,
};
use crate::write_bench::{bar_body, PrivateRedis};

const DATABASE: &str = "stockpile_bench_streams";
const SEED: [&str; 4] = ["--tickers", "50", "--days", "60"];
const PREFIX: &str = "stockpile-bench-streams:";
const TOKEN: &str = "bench-streams-admin-token-0123456789";
const A: &str = "127.0.0.1:18210";
const B: &str = "127.0.0.1:18211";
const WRITES: usize = 1_000;
const IDLE_STREAMS: usize = 2_000;
/// The read whose hit throughput the idle streams must leave alone.
const HIT_PATH: &str = "/api/stocks/AAPL";
/// The longest an event may take before the bench gives up on it.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn bench_streams(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: cargo xtask bench-streams".into());
    }
    prepare(DATABASE, &SEED)?;
    let redis = PrivateRedis::start()?;
    let redis_url = redis.url();
    let env = [
        ("CACHE_BACKEND", "redis"),
        ("REDIS_URL", redis_url.as_str()),
        ("CACHE_KEY_PREFIX", PREFIX),
        ("ADMIN_TOKEN", TOKEN),
    ];
    let _a = start_server(A, DATABASE, &env)?;
    let b = start_server(B, DATABASE, &env)?;
    ensure_on_redis(A)?;
    ensure_on_redis(B)?;

    let latencies = event_latencies()?;
    let [p50, p99] = [0.5, 0.99].map(|p| percentile(&latencies, p));
    let worst = latencies.last().copied().unwrap_or_default();
    println!("event latency A → B over {WRITES} writes: p50 {p50:.2} ms, p99 {p99:.2} ms, max {worst:.2} ms");

    let (alone, _, _) = wrk(B, HIT_PATH, 64)?;
    let before = memory_kib(&b, "VmRSS").ok_or("no VmRSS for B")?;
    let streams = (0..IDLE_STREAMS)
        .map(|_| open_stream(B, "AAPL"))
        .collect::<Result<Vec<_>, _>>()?;
    // Let the allocator settle before the reading.
    std::thread::sleep(Duration::from_secs(2));
    let after = memory_kib(&b, "VmRSS").ok_or("no VmRSS for B")?;
    // And the latency's stream, still open.
    let open = open_streams(B)?;
    if open != IDLE_STREAMS + 1 {
        return Err(format!(
            "B reports {open} open streams, not {}",
            IDLE_STREAMS + 1
        ));
    }
    let per_stream = after.saturating_sub(before) as f64 * 1024.0 / IDLE_STREAMS as f64;
    println!(
        "resident memory of B: {before} KiB, {after} KiB with {IDLE_STREAMS} idle streams: {per_stream:.0} bytes each"
    );
    let (beside_streams, _, _) = wrk(B, HIT_PATH, 64)?;
    println!("hit throughput of B: {alone:.0} req/s alone, {beside_streams:.0} req/s beside {IDLE_STREAMS} idle streams");
    drop(streams);
    write_report(
        [p50, p99, worst],
        [before, after],
        per_stream,
        [alone, beside_streams],
    )
}

/// Milliseconds from each upload's answer on A to its event on B, sorted.
fn event_latencies() -> Result<Vec<f64>, String> {
    let bar = bar_body(&mut connect(A)?)?;
    // Past its first event: every event from now on is one upload's.
    let stream = open_stream(B, "AAPL")?;
    let (events, arrivals) = mpsc::channel();
    std::thread::spawn(move || read_events(stream, &events));
    let headers = format!("Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n");
    let mut writer = connect(A)?;
    let mut latencies = Vec::with_capacity(WRITES);
    for write in 0..WRITES {
        let (status, answer) = request(
            &mut writer,
            "POST",
            "/api/stocks/AAPL/prices",
            &headers,
            &bar,
        )?;
        let answered = Instant::now();
        if status != 200 {
            return Err(format!(
                "upload {write} answered {status}: {}",
                String::from_utf8_lossy(&answer)
            ));
        }
        let arrived = arrivals
            .recv_timeout(EVENT_TIMEOUT)
            .map_err(|_| format!("no event on B within {EVENT_TIMEOUT:?} of upload {write}"))?;
        latencies.push(match arrived.checked_duration_since(answered) {
            Some(after) => after.as_secs_f64() * 1000.0,
            None => -(answered.duration_since(arrived).as_secs_f64() * 1000.0),
        });
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

/// A stream of `tickers` on `addr`, its head read and checked, its first event read.
fn open_stream(addr: &str, tickers: &str) -> Result<BufReader<TcpStream>, String> {
    let mut stream = connect(addr)?;
    write!(
        stream.get_mut(),
        "GET /api/stream/quotes?tickers={tickers} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut status = String::new();
    stream.read_line(&mut status).map_err(|e| e.to_string())?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("the stream was refused: {status}"));
    }
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        if stream.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("the stream ended in its head".into());
        }
    }
    next_event(&mut stream)?;
    Ok(stream)
}

/// Reads up to the next `event:` line of a stream (chunk sizes and other lines skipped).
fn next_event(stream: &mut BufReader<TcpStream>) -> Result<(), String> {
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("the stream ended".into());
        }
        if line.starts_with("event: ") {
            return Ok(());
        }
    }
}

/// Sends the moment each event of `stream` arrives (blocking reads with no timeout) until the
/// stream or the receiver goes away.
fn read_events(mut stream: BufReader<TcpStream>, events: &mpsc::Sender<Instant>) {
    let _ = stream.get_ref().set_read_timeout(None);
    while next_event(&mut stream).is_ok() {
        if events.send(Instant::now()).is_err() {
            return;
        }
    }
}

/// `stockpile_stream_clients` of the server at `addr`.
fn open_streams(addr: &str) -> Result<usize, String> {
    let (_, page) = request(&mut connect(addr)?, "GET", "/metrics", "", "")?;
    String::from_utf8_lossy(&page)
        .lines()
        .find_map(|l| l.strip_prefix("stockpile_stream_clients "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| "no stockpile_stream_clients on /metrics".into())
}

fn write_report(
    [p50, p99, worst]: [f64; 3],
    [before, after]: [u64; 2],
    per_stream: f64,
    [alone, beside_streams]: [f64; 2],
) -> Result<(), String> {
    let share = beside_streams / alone * 100.0;
    let (start_marker, end_marker) = ("<!-- bench:streams:start -->", "<!-- bench:streams:end -->");
    let section = format!(
        "{start_marker}\nMeasured {} on {} with `cargo xtask bench-streams`: two release servers, A and B, over one \
PostgreSQL 15 database (50 tickers × 60 days) and a private Redis 7 on loopback, each with its default settings \
and `CACHE_BACKEND=redis`.\n\n\
| figure | value |\n|---|---:|\n\
| event latency, A's answer to a price upload → its `quote` event on a stream of B, p50 over {WRITES} writes | {p50:.2} ms |\n\
| the same, p99 | {p99:.2} ms |\n\
| the same, worst | {worst:.2} ms |\n\
| resident memory of B before / with {IDLE_STREAMS} idle streams | {before} KiB / {after} KiB |\n\
| resident memory per idle stream | {per_stream:.0} bytes |\n\
| hit throughput of B, `{HIT_PATH}`, wrk 64 connections 5 s: alone / beside the idle streams | {alone:.0} / {beside_streams:.0} req/s ({share:.0} %) |\n\n\
The uploads run one after another on one keep-alive connection to A, each putting back AAPL's latest bar; a \
negative latency is an event that reached B's client before A's answer reached the writer (A publishes before it \
answers). The idle streams are 2,000 connections to B, each watching AAPL and past its first event.\n{end_marker}",
        today(),
        machine(),
    );
    crate::replace_section("docs/benchmarks.md", "# Benchmarks", &section)
}
