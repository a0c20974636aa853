//! `cargo xtask bench-compression`: compressed hits against nginx serving the same bytes, and
//! the bytes on the wire per read. The release server over the bench's PostgreSQL and a private
//! Redis (default first tier), and nginx (Debian's, run in the foreground as a child with a
//! configuration of its own) serving, for each cached read, the exact bodies the server sends:
//! fetched from it as they are, in br and in gzip, and written as `file`, `file.br` and
//! `file.gz` into nginx's root, served with `brotli_static` and `gzip_static` on.
//!
//! Both are driven by wrk with a browser's `Accept-Encoding: gzip, deflate, br, zstd`, 64
//! connections, three 3 s rounds per read, alternating between the two, so they share each
//! moment of the machine; each read's bytes are checked to be the same length from both before
//! it is measured.

use std::io::BufReader;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::spare_port;
use crate::harness::{
    connect, ensure_on_redis, exchange, load_average, machine, prepare, start_server, today,
    wrk_alternating, TempDir, BENCH_DATABASE, CONNECTIONS, ROUNDS, SECONDS,
};
use crate::quotes_bench::quotes_path;
use crate::run;
use crate::write_bench::PrivateRedis;

const ADDR: &str = "127.0.0.1:18240";
const PREFIX: &str = "stockpile-bench-compression:";
/// What Chromium and Firefox send.
const BROWSER: &str = "gzip, deflate, br, zstd";
/// How many tickers a watchlist batch asks for.
pub(crate) const WATCHLIST: usize = 30;

/// One read's bodies: as it is, in the coding a browser gets, and in gzip.
struct Bodies {
    identity: Vec<u8>,
    /// The coding a browser's header gets (`None`: sent as it is) and its bytes.
    browser: (Option<String>, Vec<u8>),
    gzip: Option<Vec<u8>>,
}

/// A read, its bodies, and the two servers' req/s.
struct Row {
    name: String,
    path: String,
    bodies: Bodies,
    stockpile: f64,
    nginx: f64,
}

pub fn bench_compression(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: cargo xtask bench-compression".into());
    }
    prepare(BENCH_DATABASE, &[])?;
    ensure_nginx_brotli()?;
    let load_before = load_average();
    let redis = PrivateRedis::start()?;
    let _server = start_server(
        ADDR,
        BENCH_DATABASE,
        &[
            ("CACHE_BACKEND", "redis"),
            ("REDIS_URL", &redis.url()),
            ("CACHE_KEY_PREFIX", PREFIX),
        ],
    )?;
    ensure_on_redis(ADDR)?;
    let mut stream = connect(ADDR)?;
    let mut reads: Vec<(String, String)> = crate::bench::READS
        .iter()
        .map(|(name, path)| ((*name).to_owned(), (*path).to_owned()))
        .collect();
    reads.push((
        format!("batch quotes ({WATCHLIST} tickers)"),
        quotes_path(&mut stream, WATCHLIST)?,
    ));
    let root = TempDir::new("bench-nginx")?;
    let mut rows = Vec::new();
    for (index, (name, path)) in reads.into_iter().enumerate() {
        let bodies = bodies(&mut stream, &path)?;
        write_files(&root.path().join("root"), index, &bodies)?;
        rows.push(Row {
            name,
            path,
            bodies,
            stockpile: 0.0,
            nginx: 0.0,
        });
    }
    let nginx = Nginx::start(root.path())?;
    for (index, row) in rows.iter_mut().enumerate() {
        let nginx_path = format!("/r{index}");
        check_same_bytes(&nginx.addr, &nginx_path, &row.bodies.browser)?;
        (row.stockpile, row.nginx) = wrk_alternating(
            (ADDR, &row.path),
            (&nginx.addr, &nginx_path),
            CONNECTIONS,
            &[&accept(BROWSER)],
            SECONDS,
        )?;
        println!(
            "{:<34} {:>6} B as it is, {:>6} B {:<4}  stockpile {:>8.0} req/s  nginx {:>8.0} req/s  ({:.0} %)",
            row.name,
            row.bodies.identity.len(),
            row.bodies.browser.1.len(),
            row.bodies.browser.0.as_deref().unwrap_or("none"),
            row.stockpile,
            row.nginx,
            row.stockpile / row.nginx * 100.0
        );
    }
    drop(nginx);
    write_report(&rows, [&load_before, &load_average()])
}

fn accept(codings: &str) -> String {
    format!("Accept-Encoding: {codings}")
}

/// `path`'s bodies as the server sends them to no `Accept-Encoding`, to a browser's and to
/// `gzip` alone.
fn bodies(stream: &mut BufReader<TcpStream>, path: &str) -> Result<Bodies, String> {
    let mut fetch = |accepts: Option<&str>| -> Result<(Option<String>, Vec<u8>), String> {
        let headers = accepts
            .map(|a| format!("{}\r\n", accept(a)))
            .unwrap_or_default();
        let answer = exchange(stream, "GET", path, &headers, "")?;
        if answer.status != 200 {
            return Err(format!("{path} answered {}", answer.status));
        }
        Ok((
            answer.header("content-encoding").map(str::to_owned),
            answer.body,
        ))
    };
    let (_, identity) = fetch(None)?;
    let browser = fetch(Some(BROWSER))?;
    let gzip = match fetch(Some("gzip"))? {
        (Some(coding), bytes) if coding == "gzip" => Some(bytes),
        _ => None,
    };
    Ok(Bodies {
        identity,
        browser,
        gzip,
    })
}

/// `r{index}` as it is, and `.br` and `.gz` beside it for the codings the server used.
fn write_files(root: &Path, index: usize, bodies: &Bodies) -> Result<(), String> {
    std::fs::create_dir_all(root).map_err(|e| e.to_string())?;
    let file = root.join(format!("r{index}"));
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|e| format!("could not write {}: {e}", path.display()))
    };
    write(&file, &bodies.identity)?;
    if let (Some(coding), bytes) = &bodies.browser {
        if coding != "br" {
            return Err(format!(
                "a browser's header got {coding}, which nginx cannot serve precompressed here"
            ));
        }
        write(&file.with_extension("br"), bytes)?;
    }
    if let Some(bytes) = &bodies.gzip {
        write(&file.with_extension("gz"), bytes)?;
    }
    Ok(())
}

/// Fails unless nginx answers `path` to a browser's header with the server's coding and length.
fn check_same_bytes(
    addr: &str,
    path: &str,
    (coding, bytes): &(Option<String>, Vec<u8>),
) -> Result<(), String> {
    let headers = format!("{}\r\n", accept(BROWSER));
    let answer = exchange(&mut connect(addr)?, "GET", path, &headers, "")?;
    let nginx_coding = answer.header("content-encoding").map(str::to_owned);
    if answer.status != 200 || &nginx_coding != coding || &answer.body != bytes {
        return Err(format!(
            "nginx answered {path} with {} {nginx_coding:?} and {} bytes, the server {coding:?} and {} bytes",
            answer.status,
            answer.body.len(),
            bytes.len()
        ));
    }
    Ok(())
}

/// `brotli_static`, from Debian's package, beside the `gzip_static` nginx is built with.
const BROTLI_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_brotli_static_module.so";

fn ensure_nginx_brotli() -> Result<(), String> {
    if Path::new(BROTLI_MODULE).exists() {
        return Ok(());
    }
    run(Command::new("apt-get").args([
        "install",
        "-y",
        "-qq",
        "nginx",
        "libnginx-mod-http-brotli-static",
    ]))
}

/// nginx in the foreground over `dir` (`dir/root` the files); stopped when dropped.
struct Nginx {
    process: Child,
    addr: String,
}

impl Nginx {
    fn start(dir: &Path) -> Result<Self, String> {
        let addr = format!("127.0.0.1:{}", spare_port()?);
        let dir_text = dir.display();
        // Tuned as a static server would be: no access log, sendfile, open files cached, one
        // worker per core as the server has, and keep-alive connections never closed for their
        // number of requests (the server closes none either).
        let config = format!(
            "load_module {BROTLI_MODULE};\n\
             daemon off;\n\
             worker_processes {cores};\n\
             pid {dir_text}/nginx.pid;\n\
             error_log {dir_text}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             access_log off;\n\
             client_body_temp_path {dir_text}/client_body;\n\
             proxy_temp_path {dir_text}/proxy;\n\
             fastcgi_temp_path {dir_text}/fastcgi;\n\
             uwsgi_temp_path {dir_text}/uwsgi;\n\
             scgi_temp_path {dir_text}/scgi;\n\
             default_type application/json;\n\
             sendfile on;\n\
             tcp_nopush on;\n\
             tcp_nodelay on;\n\
             keepalive_requests 10000000;\n\
             keepalive_timeout 60s;\n\
             open_file_cache max=64 inactive=60s;\n\
             open_file_cache_valid 60s;\n\
             gzip_static on;\n\
             brotli_static on;\n\
             gzip_vary on;\n\
             server {{ listen {addr}; root {dir_text}/root; location / {{ }} }}\n\
             }}\n",
            cores = std::thread::available_parallelism().map_or(1, usize::from),
        );
        let config_file = dir.join("nginx.conf");
        std::fs::write(&config_file, config).map_err(|e| e.to_string())?;
        let process = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&config_file)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start nginx (is it installed?): {e}"))?;
        let nginx = Self { process, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&nginx.addr).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                return Err(format!("nginx did not listen within 10 s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master then stops its workers, which a killed master would
    /// leave running.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.process.id().to_string()])
            .status();
        let _ = self.process.wait();
    }
}

fn write_report(rows: &[Row], [load_before, load_after]: [&str; 2]) -> Result<(), String> {
    let mut speed = String::from(
        "| read | coding sent | Stockpile req/s | nginx req/s | Stockpile ÷ nginx |\n|---|---|---:|---:|---:|\n",
    );
    let mut wire = String::from(
        "| read | path | as it is (B) | br (B) | gzip (B) | smaller by (browser's header) |\n|---|---|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let (coding, bytes) = &row.bodies.browser;
        speed.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} % |\n",
            row.name,
            coding.as_deref().unwrap_or("none (under 1,024 B)"),
            row.stockpile,
            row.nginx,
            row.stockpile / row.nginx * 100.0
        ));
        let compressed = |size: Option<usize>| size.map_or("—".to_owned(), |n| n.to_string());
        wire.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {:.1}× |\n",
            row.name,
            row.path,
            row.bodies.identity.len(),
            compressed(coding.is_some().then_some(bytes.len())),
            compressed(row.bodies.gzip.as_ref().map(Vec::len)),
            row.bodies.identity.len() as f64 / bytes.len() as f64
        ));
    }
    let section = format!(
        "<!-- bench:compression:start -->\nMeasured {} on {} with `cargo xtask bench-compression`: the release server \
(`CACHE_BACKEND=redis`, a private Redis 7 on loopback, default first tier) over PostgreSQL 15 (517 tickers × 504 \
trading days), against nginx 1.22 (Debian's, `gzip_static` and `brotli_static` on, one worker per core, no access \
log, `sendfile`, open files cached, keep-alive without a request limit) serving the exact bytes the server sends \
for each read, fetched from it as they are, in br and in gzip. Every request is a hit with a browser's \
`Accept-Encoding: {BROWSER}`; wrk, 2 threads, {CONNECTIONS} connections, {ROUNDS} rounds of {SECONDS} s per read, \
each round the server then nginx, the req/s the mean of the rounds, on the same 2 cores as both servers. Load \
average (1 min) of the shared machine at the start and the end: {load_before} and {load_after}. Before each read is measured, nginx's answer to \
the same header is checked to be the server's coding and bytes. Target: ≥ 90 % of nginx's req/s.\n\n{speed}\n\
Bytes of the body on the wire per read (headers not counted), as it is and in each coding; a browser's header \
gets br. Target: history 1y and the list at least 4× smaller.\n\n{wire}<!-- bench:compression:end -->",
        today(),
        machine(),
    );
    crate::replace_section("docs/benchmarks.md", "# Benchmarks", &section)
}
