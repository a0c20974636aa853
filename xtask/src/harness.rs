//! What `bench` and `soak` share to drive the release server: building it and seeding its
//! PostgreSQL database, starting it and waiting until it listens, HTTP/1.1 on keep-alive
//! connections, and the figures both report (memory, machine, percentiles).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::run;

/// How long a request may wait for its answer: a hung server must not hang a task past its
/// deadline (the slowest read of the large bench takes well under a second).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The release server; stopped when dropped.
pub(crate) struct Server(Child);

impl Server {
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The release binary `prepare` builds, in cargo's target directory (`CARGO_TARGET_DIR` when
/// set).
pub(crate) fn binary() -> String {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    format!("{target}/release/stockpile")
}

/// The local PostgreSQL's `database`, as the password-less role `postgres`.
pub(crate) fn database_url(database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:5432/{database}")
}

/// A loopback port nothing listens on right now.
pub(crate) fn spare_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| e.to_string())
}

/// Waits until something listens on `addr`; `what` names it when nothing does within `within`.
pub(crate) fn wait_for_listener(addr: &str, within: Duration, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{what} did not start listening on {addr} within {within:?}"
    ))
}

/// Builds the release binary, then creates `database` and seeds it (with the extra
/// `stockpile seed` options `seed_args`) unless it holds stocks already.
pub(crate) fn prepare(database: &str, seed_args: &[&str]) -> Result<(), String> {
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "--release", "-p", "stockpile"]);
    // `cargo xtask` runs with the variables cargo sets for xtask itself (CARGO_MANIFEST_DIR,
    // CARGO_PKG_NAME, …), some of which ring's build script watches: left in, every switch
    // between this build and a `cargo build --release` from a shell rebuilds ring and all that
    // depends on it (9 to 12 minutes on 2 shared cores).
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_for_xtask) {
            build.env_remove(name);
        }
    }
    run(&mut build)?;
    crate::create_postgres_database(database);
    seed(&binary(), &database_url(database), seed_args)
}

/// `binary seed --if-empty` over `database_url`, with the extra options `seed_args`, ending on
/// the day every figure and test of the project is dated by.
pub(crate) fn seed(binary: &str, database_url: &str, seed_args: &[&str]) -> Result<(), String> {
    run(Command::new(binary)
        .args(["seed", "--if-empty", "--last-date", "2025-11-21"])
        .args(seed_args)
        .env("DATABASE_URL", database_url)
        .env("CACHE_BACKEND", "none")
        .env("RUST_LOG", "warn"))
}

/// Whether `name` is one of the variables cargo sets for the package it runs (here xtask), not
/// one of its configuration (`CARGO_TARGET_DIR`, `CARGO_HOME`, …).
fn set_by_cargo_for_xtask(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
        ]
        .contains(&name)
}

/// The release server on `addr` over `database`, with `env` added; returns once it listens.
pub(crate) fn start_server(
    addr: &str,
    database: &str,
    env: &[(&str, &str)],
) -> Result<Server, String> {
    start_server_from(&binary(), addr, &database_url(database), env)
}

/// The server `binary` (this commit's release build, or another's to compare with) over
/// `database_url`, as [`start_server`] starts it.
pub(crate) fn start_server_from(
    binary: &str,
    addr: &str,
    database_url: &str,
    env: &[(&str, &str)],
) -> Result<Server, String> {
    let child = Command::new(binary)
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("BIND_ADDR", addr)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start the server: {e}"))?;
    let server = Server(child);
    wait_for_listener(addr, Duration::from_secs(60), "the server")?;
    Ok(server)
}

/// A keep-alive connection to the server, with Nagle off so that each request leaves at once.
pub(crate) fn connect(addr: &str) -> Result<BufReader<TcpStream>, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(BufReader::new(stream))
}

/// An answer: its status, its header fields (names in lower case) and its body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The first value of the header field `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One request on a keep-alive connection, `headers` being extra header lines each ending in
/// CRLF; returns the status and the body.
pub(crate) fn request(
    stream: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Result<(u16, Vec<u8>), String> {
    exchange(stream, method, path, headers, body).map(|answer| (answer.status, answer.body))
}

/// As [`request`], the whole answer.
pub(crate) fn exchange(
    stream: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Result<Answer, String> {
    // One write, so that the request leaves in one segment with TCP_NODELAY.
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .get_mut()
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut status_line = String::new();
    stream
        .read_line(&mut status_line)
        .map_err(|e| e.to_string())?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status line")?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).map_err(|e| e.to_string())?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    let length = answer
        .header("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    answer.body = vec![0; length];
    stream
        .read_exact(&mut answer.body)
        .map_err(|e| e.to_string())?;
    Ok(answer)
}

/// `GET path` on `stream`, which must answer 200 with JSON.
pub(crate) fn get_json(
    stream: &mut BufReader<TcpStream>,
    path: &str,
) -> Result<serde_json::Value, String> {
    let (status, body) = request(stream, "GET", path, "", "")?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {path}: {e}"))
}

/// The server's `/api/cache/status`, on a fresh connection.
pub(crate) fn cache_status(addr: &str) -> Result<serde_json::Value, String> {
    get_json(&mut connect(addr)?, "/api/cache/status")
}

/// Fails unless the server at `addr` is serving from Redis.
pub(crate) fn ensure_on_redis(addr: &str) -> Result<(), String> {
    let status = cache_status(addr)?;
    if status["backend"] == "redis" {
        Ok(())
    } else {
        Err(format!(
            "the server is not on Redis (is it running at 127.0.0.1:6379?): {status}"
        ))
    }
}

/// One memory figure of the server's `/proc/<pid>/status` (`VmRSS`, `VmHWM`, …), in KiB.
pub(crate) fn memory_kib(server: &Server, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).ok()?;
    let line = status.lines().find(|l| {
        l.strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The value at fraction `p` (0 to 1) of `sorted`, which must not be empty.
pub(crate) fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The cores and CPU model, for the reports.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores, {cpu}")
}

/// Today's date, UTC, as `YYYY-MM-DD`, for the reports.
pub(crate) fn today() -> String {
    std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn ensure_wrk() -> Result<(), String> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    run(Command::new("apt-get").args(["install", "-y", "-qq", "wrk"]))
}

/// Requests per second, p50 and p99 (as wrk prints them) of 5 s at `connections`
/// connections to `addr`.
pub(crate) fn wrk(
    addr: &str,
    path: &str,
    connections: u32,
) -> Result<(f64, String, String), String> {
    wrk_with(addr, path, connections, &[], 5)
}

/// [`wrk`] for `seconds`, with `headers` (`Name: value`) on every request.
pub(crate) fn wrk_with(
    addr: &str,
    path: &str,
    connections: u32,
    headers: &[&str],
    seconds: u32,
) -> Result<(f64, String, String), String> {
    ensure_wrk()?;
    let output = Command::new("wrk")
        .args(headers.iter().flat_map(|header| ["-H", header]))
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            &format!("http://{addr}{path}"),
        ])
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") {
        return Err(format!("{path}: wrk saw non-2xx answers:\n{text}"));
    }
    let field = |label: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    let rps = field("Requests/sec:").parse().unwrap_or(0.0);
    Ok((rps, field("50%"), field("99%")))
}

/// A directory of the task's own under the system's temporary directory, removed when dropped.
pub(crate) struct TempDir(std::path::PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("stockpile-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("could not create {}: {e}", path.display()))?;
        Ok(Self(path))
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The database of the benches over the default data (517 tickers × 504 days): seeded once for all.
pub(crate) const BENCH_DATABASE: &str = "stockpile_bench";

/// Connections per wrk run in a comparison: the 64 `bench` measures hits at, so figures compare.
pub(crate) const CONNECTIONS: u32 = 64;

/// Seconds per round of wrk: alternated 3 s rounds hold steadier than one 5 s run of each.
pub(crate) const SECONDS: u32 = 3;

/// Rounds of wrk ([`SECONDS`] each) a comparison alternates between its two subjects.
pub(crate) const ROUNDS: u32 = 3;

/// The mean req/s of `a` and of `b` (each `(addr, path)`) over [`ROUNDS`] rounds of wrk at
/// `connections` for `seconds`, `a` then `b` in each round, so that both share every moment of
/// a noisy machine.
pub(crate) fn wrk_alternating(
    a: (&str, &str),
    b: (&str, &str),
    connections: u32,
    headers: &[&str],
    seconds: u32,
) -> Result<(f64, f64), String> {
    let (mut sum_a, mut sum_b) = (0.0, 0.0);
    for _ in 0..ROUNDS {
        sum_a += wrk_with(a.0, a.1, connections, headers, seconds)?.0;
        sum_b += wrk_with(b.0, b.1, connections, headers, seconds)?.0;
    }
    Ok((sum_a / f64::from(ROUNDS), sum_b / f64::from(ROUNDS)))
}

/// The 1-minute load average, as `/proc/loadavg` says: how busy the shared cores were.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_build_drops_xtasks_own_variables_and_keeps_the_configuration() {
        for own in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
        ] {
            assert!(set_by_cargo_for_xtask(own), "{own}");
        }
        for configuration in [
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "CARGO",
            "CARGO_BUILD_JOBS",
        ] {
            assert!(!set_by_cargo_for_xtask(configuration), "{configuration}");
        }
    }

    #[test]
    fn an_exchange_reads_the_status_the_headers_and_exactly_the_body() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a spare port");
        let addr = listener.local_addr().expect("an address").to_string();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().expect("a connection");
            let mut request = [0; 1024];
            let _ = socket.read(&mut request);
            // Two answers back to back: the first must end where its Content-Length says.
            socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Cache: HIT\r\n\
                      Content-Encoding:  br \r\n\r\nhelloHTTP/1.1 304 Not Modified\r\n\r\n",
                )
                .expect("written");
            // Open until the second request arrives.
            let _ = socket.read(&mut request);
        });
        let mut stream = connect(&addr).expect("connected");
        let answer = exchange(&mut stream, "GET", "/", "", "").expect("an answer");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, b"hello");
        assert_eq!(answer.header("x-cache"), Some("HIT"));
        assert_eq!(answer.header("content-encoding"), Some("br"));
        assert_eq!(answer.header("etag"), None);
        let (status, body) = request(&mut stream, "GET", "/", "", "").expect("the second");
        assert_eq!((status, body.len()), (304, 0));
        server.join().expect("the server wrote");
    }
}
