//! `cargo xtask soak [--minutes N | --seconds N] [--connections N]`: a mixed read/write load
//! against the release server over the local PostgreSQL and Redis, watching the server's
//! resident memory.
//!
//! Readers (one keep-alive connection each, a fresh one every `REUSE` requests) send the five
//! cached reads with varied parameters: half from a small hot set, half spread over the whole
//! key space, so that the run has hits and misses, and short TTLs make entries expire and be
//! recomputed many times. One writer creates, updates, uploads bars to and deletes tickers of
//! its own (`SOAK_TICKERS`), each write invalidating lists, movers and leaderboards.
//!
//! A 404 for a soak ticker's detail or history is expected (the writer deletes them in turn);
//! every other answer that is not 2xx counts as an error. The task fails on any 5xx, any
//! transport error or unexpected 4xx, or when resident memory grows more than `MAX_GROWTH`
//! from the end of the warm-up (the first fifth of the run) to the end. Bounded: the load
//! stops at its deadline and the server is stopped at the end.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{self, Answer, Server};

const DATABASE: &str = "stockpile_soak";
const ADDR: &str = "127.0.0.1:18090";
/// Short TTLs, so that entries expire many times within one run.
const TTL_DEFAULT: &str = "20";
const TTL_SCORES: &str = "40";
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const WRITE_EVERY: Duration = Duration::from_millis(500);
/// Requests per connection before it is replaced, so that connection churn is part of the load.
const REUSE: u32 = 1000;
const MAX_GROWTH: f64 = 0.10;
/// Tickers only the soak writes; the seeded universe is read, never changed.
const SOAK_TICKERS: &[&str] = &["ZZSOAK1", "ZZSOAK2", "ZZSOAK3", "ZZSOAK4"];
/// The seed's last trading weeks, which the writer's bars overwrite in turn.
const BAR_WEEKS: &[u32] = &[3, 10, 17];

struct Options {
    run_for: Duration,
    connections: usize,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        run_for: Duration::from_secs(300),
        connections: 8,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(format!("{flag} needs a number"))?;
        match flag.as_str() {
            "--minutes" if (1..=60).contains(&value) => {
                options.run_for = Duration::from_secs(value * 60);
            }
            "--seconds" if (10..=3600).contains(&value) => {
                options.run_for = Duration::from_secs(value);
            }
            "--connections" if (1..=64).contains(&value) => options.connections = value as usize,
            _ => {
                return Err(format!(
                    "unknown option or value out of bounds: {flag} {value} \
                     (--minutes 1–60, --seconds 10–3600, --connections 1–64)"
                ));
            }
        }
    }
    Ok(options)
}

/// A small deterministic generator (splitmix64): the load needs variety, not secrecy.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn pick<'a, T: ?Sized>(&mut self, items: &'a [&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

/// The seeded tickers and sectors, as the server lists them, and the tickers the load writes
/// (which its reads ask for now and then).
pub(crate) struct Universe {
    pub(crate) tickers: Vec<String>,
    pub(crate) sectors: Vec<String>,
    pub(crate) written: &'static [&'static str],
}

/// A keep-alive connection to `addr` that reconnects after an error, and after `REUSE`
/// requests.
pub(crate) struct Client {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
    used: u32,
}

impl Client {
    pub(crate) fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            stream: None,
            used: 0,
        }
    }

    /// The answer and how long it took.
    pub(crate) fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> Result<(Answer, Duration), String> {
        if self.used >= REUSE {
            self.stream = None;
        }
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                self.used = 0;
                self.stream.insert(harness::connect(&self.addr)?)
            }
        };
        self.used += 1;
        let started = Instant::now();
        let answer = harness::exchange(stream, method, path, headers, body);
        if answer.is_err() {
            self.stream = None;
        }
        answer.map(|answer| (answer, started.elapsed()))
    }
}

/// What one kind of request (reads or writes) met.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) unexpected: BTreeMap<u16, u64>,
    expected_404: u64,
    pub(crate) transport_errors: u64,
    pub(crate) first_errors: Vec<String>,
}

impl Tally {
    pub(crate) fn record(
        &mut self,
        what: &str,
        answer: &Result<(Answer, Duration), String>,
        may_be_gone: bool,
    ) {
        match answer {
            Ok((Answer { status, .. }, elapsed)) => {
                let (status, elapsed) = (*status, *elapsed);
                self.latencies_us
                    .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                match status {
                    200..=299 => {}
                    404 if may_be_gone => self.expected_404 += 1,
                    _ => {
                        *self.unexpected.entry(status).or_default() += 1;
                        self.note(format!("{what} answered {status}"));
                    }
                }
            }
            Err(e) => {
                self.transport_errors += 1;
                self.note(format!("{what}: {e}"));
            }
        }
    }

    pub(crate) fn note(&mut self, error: String) {
        if self.first_errors.len() < 5 {
            self.first_errors.push(error);
        }
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.unexpected {
            *self.unexpected.entry(status).or_default() += n;
        }
        self.expected_404 += other.expected_404;
        self.transport_errors += other.transport_errors;
        for error in other.first_errors {
            self.note(error);
        }
    }

    pub(crate) fn requests(&self) -> u64 {
        self.latencies_us.len() as u64 + self.transport_errors
    }
}

/// A read path and whether its ticker is one the writer writes (so a 404 is expected when
/// the writer deletes).
pub(crate) fn read_path(rng: &mut Rng, universe: &Universe) -> (String, bool) {
    let hot = rng.below(2) == 0;
    let sector = urlencode(&universe.sectors[rng.below(universe.sectors.len())]);
    let (ticker, soak) = if rng.below(20) == 0 {
        (rng.pick(universe.written), true)
    } else if hot {
        (universe.tickers[rng.below(10)].as_str(), false)
    } else {
        (
            universe.tickers[rng.below(universe.tickers.len())].as_str(),
            false,
        )
    };
    let family = rng.below(10);
    let path = match (family, hot) {
        (0..=2, true) => rng
            .pick(&["/api/stocks", "/api/stocks?sort=change_percent&order=desc"])
            .to_owned(),
        (0..=2, false) => format!(
            "/api/stocks?q={}&sector={sector}&sort={}&order={}&page={}&page_size={}",
            rng.pick(&["", "a", "in", "co", "tech", "ba", "e"]),
            rng.pick(&[
                "ticker",
                "name",
                "market_cap",
                "price",
                "change_percent",
                "volume"
            ]),
            rng.pick(&["asc", "desc"]),
            1 + rng.below(3),
            rng.pick(&["10", "20", "50", "100", "200"]),
        ),
        (3..=4, _) => format!("/api/stocks/{ticker}"),
        (5..=6, true) => format!("/api/stocks/{ticker}/history"),
        (5..=6, false) => {
            let (year, months) = if rng.below(2) == 0 {
                (2024, 12)
            } else {
                (2025, 11)
            };
            let interval = rng.pick(&["1d", "1w", "1mo"]);
            let month = 1 + rng.below(months);
            let day = 1 + rng.below(28);
            format!(
                "/api/stocks/{ticker}/history?from={year}-{month:02}-{day:02}&interval={interval}"
            )
        }
        (7, _) => format!(
            "/api/stocks/top?metric={}&limit={}",
            rng.pick(&["gainers", "losers", "active"]),
            rng.pick(&["5", "10", "20", "50", "100"]),
        ),
        _ => format!(
            "/api/stocks/leaderboard/top?period={}&limit={}{}",
            rng.pick(&["1w", "1m", "3m", "6m", "1y", "ytd"]),
            rng.pick(&["10", "25", "100"]),
            if hot {
                String::new()
            } else {
                format!("&sector={sector}")
            },
        ),
    };
    (path, soak && (3..=6).contains(&family))
}

pub(crate) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn read_loop(seed: u64, deadline: Instant, universe: &Universe, done: &AtomicU64) -> Tally {
    let mut rng = Rng(seed);
    let mut client = Client::new(ADDR);
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let (path, may_be_gone) = read_path(&mut rng, universe);
        let answer = client.send("GET", &path, "", "");
        tally.record(&format!("GET {path}"), &answer, may_be_gone);
        done.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

/// Every `WRITE_EVERY`, the next soak ticker's next step: created, updated and given bars in
/// turn, and deleted every eighth turn.
fn write_loop(deadline: Instant, auth: &str, done: &AtomicU64) -> Tally {
    let mut rng = Rng(0x50a6);
    let mut client = Client::new(ADDR);
    let mut tally = Tally::default();
    let json = format!("{auth}Content-Type: application/json\r\n");
    for turn in 0.. {
        if Instant::now() >= deadline {
            break;
        }
        let ticker = SOAK_TICKERS[turn % SOAK_TICKERS.len()];
        let path = format!("/api/stocks/{ticker}");
        let (method, path, body) = match (turn / SOAK_TICKERS.len()) % 8 {
            7 => ("DELETE", path, String::new()),
            step if step % 2 == 0 => (
                "PUT",
                path,
                format!(
                    r#"{{"name": "Soak {ticker} Inc.", "exchange": "SOAK", "sector": "Soak Testing", "market_cap": {}}}"#,
                    rng.next() % 1_000_000_000
                ),
            ),
            _ => ("POST", format!("{path}/prices"), bars(&mut rng)),
        };
        let answer = client.send(method, &path, &json, &body);
        tally.record(&format!("{method} {path}"), &answer, false);
        done.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(WRITE_EVERY);
    }
    tally
}

/// Five bars of one of the seed's last trading weeks.
pub(crate) fn bars(rng: &mut Rng) -> String {
    let monday = BAR_WEEKS[rng.below(BAR_WEEKS.len())];
    let bars: Vec<String> = (0..5)
        .map(|day| {
            let low = 50.0 + (rng.below(5000) as f64) / 100.0;
            let high = low + (rng.below(500) as f64) / 100.0;
            format!(
                r#"{{"date": "2025-11-{:02}", "open": {low:.2}, "high": {high:.2}, "low": {low:.2}, "close": {high:.2}, "volume": {}}}"#,
                monday + day,
                rng.below(10_000_000)
            )
        })
        .collect();
    format!(r#"{{"bars": [{}]}}"#, bars.join(", "))
}

/// The time into the run, the server's resident memory then, and the requests done by then.
struct Sample {
    at: Duration,
    rss_kib: u64,
    requests: u64,
}

fn rss_kib(server: &Server) -> u64 {
    harness::memory_kib(server, "VmRSS").unwrap_or(0)
}

/// Appends a sample every `SAMPLE_EVERY` until the deadline, printing each with the
/// throughput since the one before.
fn sample_until(
    samples: &mut Vec<Sample>,
    server: &Server,
    started: Instant,
    deadline: Instant,
    done: &AtomicU64,
) {
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        std::thread::sleep(SAMPLE_EVERY.min(left));
        let sample = Sample {
            at: started.elapsed(),
            rss_kib: rss_kib(server),
            requests: done.load(Ordering::Relaxed),
        };
        if let Some(last) = samples.last() {
            let rate = (sample.requests - last.requests) as f64
                / (sample.at - last.at).as_secs_f64().max(0.001);
            println!(
                "soak {:>5.0} s  rss {:>6.1} MiB  {rate:>6.0} req/s",
                sample.at.as_secs_f64(),
                mib(sample.rss_kib)
            );
        }
        samples.push(sample);
        if left <= SAMPLE_EVERY {
            return;
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A bearer token for this run only, never printed.
pub(crate) fn fresh_token() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?,
        &mut bytes,
    )
    .map_err(|e| e.to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Lists every stock, page by page; `written` are the tickers the load writes.
pub(crate) fn universe(
    stream: &mut BufReader<TcpStream>,
    written: &'static [&'static str],
) -> Result<Universe, String> {
    let mut tickers = Vec::new();
    let mut sectors = Vec::new();
    for page in 1.. {
        let list = harness::get_json(stream, &format!("/api/stocks?page_size=200&page={page}"))?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        for item in items {
            tickers.extend(item["ticker"].as_str().map(str::to_owned));
            let sector = item["sector"].as_str();
            if let Some(sector) = sector.filter(|s| !sectors.iter().any(|known| known == s)) {
                sectors.push(sector.to_owned());
            }
        }
    }
    if tickers.len() < 10 || sectors.is_empty() {
        return Err(format!("the database holds only {} stocks", tickers.len()));
    }
    Ok(Universe {
        tickers,
        sectors,
        written,
    })
}

pub fn soak(args: &[String]) -> Result<(), String> {
    let options = options(args)?;
    harness::prepare(DATABASE, &[])?;
    let token = fresh_token()?;
    let server = harness::start_server(
        ADDR,
        DATABASE,
        &[
            ("CACHE_BACKEND", "redis"),
            ("REDIS_URL", "redis://127.0.0.1:6379/0"),
            ("CACHE_KEY_PREFIX", "stockpile-soak:"),
            ("CACHE_TTL_DEFAULT", TTL_DEFAULT),
            ("CACHE_TTL_SCORES", TTL_SCORES),
            ("ADMIN_TOKEN", &token),
        ],
    )?;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let mut setup = harness::connect(ADDR)?;
    // A cold cache and no soak tickers left from an earlier run, so runs compare.
    for ticker in SOAK_TICKERS {
        harness::request(
            &mut setup,
            "DELETE",
            &format!("/api/stocks/{ticker}"),
            &auth,
            "",
        )?;
    }
    let (status, _) = harness::request(&mut setup, "DELETE", "/api/cache", &auth, "")?;
    if status != 200 {
        return Err(format!("clearing the cache answered {status}"));
    }
    let universe = universe(&mut setup, SOAK_TICKERS)?;
    harness::ensure_on_redis(ADDR)?;
    println!(
        "soak: {} s, {} read connections and one writer, against {} tickers on {ADDR}",
        options.run_for.as_secs(),
        options.connections,
        universe.tickers.len()
    );

    let done = AtomicU64::new(0);
    let mut samples = vec![Sample {
        at: Duration::ZERO,
        rss_kib: rss_kib(&server),
        requests: 0,
    }];
    let started = Instant::now();
    let deadline = started + options.run_for;
    let (reads, writes) = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..options.connections)
            .map(|i| {
                let (universe, done) = (&universe, &done);
                scope.spawn(move || read_loop(i as u64 + 1, deadline, universe, done))
            })
            .collect();
        let writer = scope.spawn(|| write_loop(deadline, &auth, &done));
        sample_until(&mut samples, &server, started, deadline, &done);
        let mut reads = Tally::default();
        for reader in readers {
            reads.merge(reader.join().map_err(|_| "a reader panicked")?);
        }
        Ok::<_, String>((reads, writer.join().map_err(|_| "the writer panicked")?))
    })?;
    let elapsed = started.elapsed();
    // On a fresh connection: the setup one has idled through the whole run.
    let cache = harness::cache_status(ADDR)?;
    drop(server);
    report(&options, elapsed, [reads, writes], &samples, &cache)
}

fn report(
    options: &Options,
    elapsed: Duration,
    mut tallies: [Tally; 2],
    samples: &[Sample],
    cache: &serde_json::Value,
) -> Result<(), String> {
    for tally in &mut tallies {
        tally.latencies_us.sort_unstable();
    }
    let seconds = elapsed.as_secs_f64();
    println!(
        "\nsoak of {seconds:.0} s on {}, {} read connections + 1 writer, {DATABASE} over PostgreSQL, Redis cache, \
         CACHE_TTL_DEFAULT={TTL_DEFAULT} s, CACHE_TTL_SCORES={TTL_SCORES} s\n",
        harness::machine(),
        options.connections
    );
    println!("| kind | requests | req/s | p50 ms | p99 ms | max ms | non-2xx (unexpected) | expected 404 | transport errors |");
    println!("|---|---:|---:|---:|---:|---:|---|---:|---:|");
    for (kind, tally) in ["reads", "writes"].into_iter().zip(&tallies) {
        let sorted = &tally.latencies_us;
        let ms = |p: f64| {
            if sorted.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2}", f64::from(harness::percentile(sorted, p)) / 1000.0)
            }
        };
        let unexpected: Vec<String> = tally
            .unexpected
            .iter()
            .map(|(status, n)| format!("{n}× {status}"))
            .collect();
        println!(
            "| {kind} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            tally.requests(),
            tally.requests() as f64 / seconds,
            ms(0.5),
            ms(0.99),
            ms(1.0),
            if unexpected.is_empty() {
                "none".to_owned()
            } else {
                unexpected.join(", ")
            },
            tally.expected_404,
            tally.transport_errors
        );
    }
    println!(
        "\nserver cache counters: {} hits, {} misses, {} errors, degraded: {}",
        cache["hits"], cache["misses"], cache["errors"], cache["degraded"]
    );

    let warm_up = elapsed / 5;
    let start = samples.first().map_or(0, |s| s.rss_kib);
    let warm = samples
        .iter()
        .find(|s| s.at >= warm_up)
        .map_or(0, |s| s.rss_kib);
    let end = samples.last().map_or(0, |s| s.rss_kib);
    let highest = samples
        .iter()
        .filter(|s| s.at >= warm_up)
        .map(|s| s.rss_kib)
        .max()
        .unwrap_or(0);
    let growth = end as f64 / warm.max(1) as f64 - 1.0;
    println!("\n| resident memory (VmRSS) | MiB |\n|---|---:|");
    println!("| start (idle, before the load) | {:.1} |", mib(start));
    println!(
        "| after warm-up ({:.0} s) | {:.1} |",
        warm_up.as_secs_f64(),
        mib(warm)
    );
    println!("| highest after warm-up | {:.1} |", mib(highest));
    println!("| end | {:.1} |", mib(end));
    println!(
        "\ngrowth past warm-up: {:+.1} % (limit {:.0} %)",
        growth * 100.0,
        MAX_GROWTH * 100.0
    );
    for error in tallies.iter().flat_map(|t| &t.first_errors) {
        println!("first errors: {error}");
    }

    let mut failures = Vec::new();
    let server_errors: u64 = tallies
        .iter()
        .flat_map(|t| t.unexpected.range(500..))
        .map(|(_, n)| n)
        .sum();
    if server_errors > 0 {
        failures.push(format!("{server_errors} answers were 5xx"));
    }
    let other: u64 = tallies
        .iter()
        .map(|t| t.unexpected.range(..500).map(|(_, n)| n).sum::<u64>() + t.transport_errors)
        .sum();
    if other > 0 {
        failures.push(format!(
            "{other} unexpected 4xx answers or transport errors"
        ));
    }
    if growth > MAX_GROWTH {
        failures.push(format!(
            "resident memory grew {:.1} % past warm-up",
            growth * 100.0
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("soak failed: {}", failures.join("; ")))
    }
}
