//! `cargo xtask bench-writes [--baseline PATH]`: what a write costs as Redis fills up. The
//! release server over the bench's PostgreSQL and a private `redis-server` on a spare port;
//! with 10,000, then 100,000, then 1,000,000 other keys under the prefix (entries no write
//! makes stale), 30 profile writes and 30 one-bar price uploads of AAPL, each after a read of
//! its detail and of the list so that there is something to make stale. The writes put back
//! what the database holds (the same profile, the same bar), so the bench data never changes.
//!
//! `--baseline PATH` measures a second release binary (another commit's
//! `target/release/stockpile`) in the same run, over the same Redis, so the two can be
//! compared; the figures go to `docs/benchmarks.md`.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    binary, connect, database_url, get_json, machine, percentile, prepare, request, spare_port,
    start_server_from, today, wait_for_listener, Server, BENCH_DATABASE,
};

const PREFIX: &str = "stockpile-bench-writes:";
const TOKEN: &str = "bench-writes-admin-token-0123456789";
const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
const WRITES: usize = 30;

/// A private Redis, stopped when dropped.
pub(crate) struct PrivateRedis {
    process: Child,
    port: u16,
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

impl PrivateRedis {
    /// A redis-server on a spare port that keeps nothing on disk.
    pub(crate) fn start() -> Result<Self, String> {
        Self::start_on(spare_port()?, &["--save", "", "--appendonly", "no"])
    }

    /// A redis-server on `port` with `args` before the port (a configuration file first, or
    /// options such as a cluster node's or a replica's); returns once it listens.
    pub(crate) fn start_on(port: u16, args: &[&str]) -> Result<Self, String> {
        let process = Command::new("redis-server")
            .args(args)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start redis-server (is it installed?): {e}"))?;
        let redis = Self { process, port };
        wait_for_listener(
            &format!("127.0.0.1:{port}"),
            Duration::from_secs(10),
            "redis-server",
        )?;
        Ok(redis)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Kills it with SIGKILL, as a crash would.
    pub(crate) fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stores keys `from..to` under the prefix through `redis-cli --pipe`: history entries
    /// of tickers that do not exist, which no write of AAPL makes stale.
    fn fill(&self, from: usize, to: usize) -> Result<(), String> {
        let mut cli = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--pipe"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start redis-cli: {e}"))?;
        {
            let stdin = cli.stdin.as_mut().ok_or("redis-cli has no stdin")?;
            let mut commands = Vec::with_capacity(96 * (to - from));
            let value = "x".repeat(64);
            for n in from..to {
                let key = format!("{PREFIX}stocks:history:FILL{n}:0000000000000000");
                write!(
                    commands,
                    "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                    key.len(),
                    value.len()
                )
                .map_err(|e| e.to_string())?;
            }
            stdin.write_all(&commands).map_err(|e| e.to_string())?;
        }
        let status = cli.wait().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("redis-cli --pipe failed: {status}"))
        }
    }
}

/// One server under measurement and its connection.
struct Subject {
    name: String,
    addr: String,
    _server: Server,
    stream: BufReader<TcpStream>,
}

/// p50, p90 and p99 of one kind of write at one size.
type Figures = [Duration; 3];

pub fn bench_writes(args: &[String]) -> Result<(), String> {
    let baseline = match args {
        [] => None,
        [flag, path] if flag == "--baseline" => Some(path.clone()),
        _ => return Err("usage: cargo xtask bench-writes [--baseline PATH]".into()),
    };
    prepare(BENCH_DATABASE, &[])?;
    let redis = PrivateRedis::start()?;
    let mut binaries = vec![("this commit".to_owned(), binary())];
    if let Some(path) = baseline {
        binaries.push(("baseline".to_owned(), path));
    }
    let mut subjects = Vec::new();
    for (index, (name, path)) in binaries.into_iter().enumerate() {
        let addr = format!("127.0.0.1:{}", 18190 + index);
        let server = start_server_from(
            &path,
            &addr,
            &database_url(BENCH_DATABASE),
            &[
                ("CACHE_BACKEND", "redis"),
                ("REDIS_URL", &redis.url()),
                ("CACHE_KEY_PREFIX", PREFIX),
                ("ADMIN_TOKEN", TOKEN),
            ],
        )?;
        let stream = connect(&addr)?;
        subjects.push(Subject {
            name,
            addr,
            _server: server,
            stream,
        });
    }
    let (profile, bar) = {
        let stream = &mut subjects[0].stream;
        (profile_body(stream)?, bar_body(stream)?)
    };
    let mut rows = Vec::new();
    let mut filled = 0;
    for size in SIZES {
        redis.fill(filled, size)?;
        filled = size;
        let mut per_subject = Vec::new();
        for subject in &mut subjects {
            let profile_writes = time_writes(subject, "PUT", "/api/stocks/AAPL", &profile)?;
            let uploads = time_writes(subject, "POST", "/api/stocks/AAPL/prices", &bar)?;
            println!(
                "{:<40} {size:>9} keys  profile write p50 {} ms p90 {} ms  one-bar upload p50 {} ms p90 {} ms",
                subject.name,
                ms(profile_writes[0]),
                ms(profile_writes[1]),
                ms(uploads[0]),
                ms(uploads[1])
            );
            per_subject.push((profile_writes, uploads));
        }
        rows.push((size, per_subject));
    }
    let names: Vec<String> = subjects.iter().map(|s| s.name.clone()).collect();
    write_report(&names, &rows)
}

/// The body of a `PUT` that writes AAPL's profile as it is.
fn profile_body(stream: &mut BufReader<TcpStream>) -> Result<String, String> {
    let detail = get_json(stream, "/api/stocks/AAPL")?;
    let mut profile = serde_json::Map::new();
    for field in [
        "name",
        "exchange",
        "sector",
        "industry",
        "currency",
        "market_cap",
    ] {
        if !detail[field].is_null() {
            profile.insert(field.to_owned(), detail[field].clone());
        }
    }
    Ok(serde_json::Value::Object(profile).to_string())
}

/// The body of an upload of AAPL's latest bar as it is.
pub(crate) fn bar_body(stream: &mut BufReader<TcpStream>) -> Result<String, String> {
    let history = get_json(stream, "/api/stocks/AAPL/history")?;
    let latest = history["bars"]
        .as_array()
        .and_then(|bars| bars.last())
        .ok_or("AAPL has no bars to upload again")?;
    Ok(serde_json::json!({ "bars": [latest] }).to_string())
}

/// p50, p90 and p99 of `WRITES` writes, each after a read of the detail and of the list.
fn time_writes(
    subject: &mut Subject,
    method: &str,
    path: &str,
    body: &str,
) -> Result<Figures, String> {
    let headers = format!("Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n");
    let mut samples = Vec::with_capacity(WRITES);
    for _ in 0..WRITES {
        for read in ["/api/stocks/AAPL", "/api/stocks"] {
            get_json(&mut subject.stream, read)?;
        }
        let started = Instant::now();
        let (status, answer) = request(&mut subject.stream, method, path, &headers, body)?;
        samples.push(started.elapsed());
        if status != 200 {
            return Err(format!(
                "{} {method} {path} answered {status}: {}",
                subject.addr,
                String::from_utf8_lossy(&answer)
            ));
        }
    }
    samples.sort();
    Ok([0.5, 0.9, 0.99].map(|p| percentile(&samples, p)))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn write_report(names: &[String], rows: &[(usize, Vec<(Figures, Figures)>)]) -> Result<(), String> {
    let mut table = String::from("| keys in Redis |");
    let mut rule = String::from("|---:|");
    for name in names {
        table.push_str(&format!(
            " {name}: profile write p50 / p90 / p99 (ms) | {name}: one-bar upload p50 / p90 / p99 (ms) |"
        ));
        rule.push_str("---:|---:|");
    }
    table.push('\n');
    table.push_str(&rule);
    table.push('\n');
    for (size, per_subject) in rows {
        table.push_str(&format!("| {size} |"));
        for (profile, upload) in per_subject {
            for figures in [profile, upload] {
                table.push_str(&format!(
                    " {} / {} / {} |",
                    ms(figures[0]),
                    ms(figures[1]),
                    ms(figures[2])
                ));
            }
        }
        table.push('\n');
    }
    let section = format!(
        "<!-- bench:writes:start -->\nMeasured {} on {} with `cargo xtask bench-writes{}`: release build, PostgreSQL 15 and a \
private Redis 7 on loopback, one keep-alive connection per server; at each size, {WRITES} profile writes and \
{WRITES} one-bar price uploads of AAPL, each after a read of its detail and of the list, with that many other \
keys under the prefix (entries no write of AAPL makes stale). Latency is measured by the client and includes the \
HTTP round trip and the database commit.\n\n{table}<!-- bench:writes:end -->",
        today(),
        machine(),
        if names.len() > 1 { " --baseline …" } else { "" },
    );
    crate::replace_section("docs/benchmarks.md", "# Benchmarks", &section)
}
