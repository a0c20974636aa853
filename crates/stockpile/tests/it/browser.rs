//! Headless Chromium against the real server: Swagger UI at `/docs/` renders the API (the page
//! the binary serves, its vendored assets and the OpenAPI document, no CDN; every operation is
//! an `opblock` in the resulting DOM), and an `EventSource` on a page the test serves receives
//! a live `quote` event after a price upload through the admin API.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{TestApp, TestDatabase};

/// Where Debian's `chromium` package installs the browser (CI installs it in `.ci/run`).
const CHROMIUM: &str = "/usr/bin/chromium";

/// Far more than the page needs (a few seconds); a hung browser fails the test instead of CI.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

/// Operations, as Swagger UI labels them (method, path template), that the page must show:
/// reads, writes, cache administration and operations, so a partly rendered document fails.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/api/stocks"),
    ("get", "/api/stocks/{ticker}/history"),
    ("get", "/api/stocks/leaderboard/top"),
    ("put", "/api/stocks/{ticker}"),
    ("post", "/api/stocks/{ticker}/prices"),
    ("post", "/api/cache/invalidate"),
    ("delete", "/api/cache"),
    ("get", "/health/ready"),
];

/// A browser profile of its own, removed afterwards, so no state leaks between runs.
struct ProfileDir(PathBuf);

impl Drop for ProfileDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// True when the browser is there; otherwise fails under `CI=true`, or says loudly that the
/// test is skipped.
fn chromium_available() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    stockpile_test_support::skip_or_fail(&format!(
        "{CHROMIUM} not installed (apt-get install chromium; .ci/run installs it)"
    ));
    false
}

/// The DOM of `url` after the page's scripts ran, as headless Chromium serialises it;
/// `extra` are more flags for the browser.
async fn rendered_dom(url: &str, extra: &[&str]) -> String {
    let profile = ProfileDir(
        std::env::temp_dir().join(format!("stockpile-chromium-{}", uuid::Uuid::new_v4())),
    );
    let run = tokio::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            // Chromium will not start as root (as CI runs) with its sandbox on.
            "--no-sandbox",
            "--disable-gpu",
            // No traffic of the browser's own (QUIC, updates, sync, first-run pages): the
            // test server is the only thing it talks to.
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.0.display()))
        // Lets the page's scripts and fetches finish before the DOM is dumped.
        .arg("--virtual-time-budget=10000")
        .arg("--dump-dom")
        .arg(url)
        .kill_on_drop(true)
        .output();
    // Awaited, not blocking: the server answers on this same runtime.
    let output = tokio::time::timeout(BROWSER_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within {BROWSER_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("could not run {CHROMIUM}: {e}"));
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && !dom.is_empty(),
        "chromium failed ({}); its standard error:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

/// Every (method, path) that Swagger UI rendered as an operation block: each block is
/// `class="opblock opblock-{method}"` followed by its summary's `data-path="{path}"`.
fn operation_blocks(dom: &str) -> BTreeSet<(String, String)> {
    dom.split("class=\"opblock opblock-")
        .skip(1)
        .filter_map(|block| {
            let (method, rest) = block.split_once('"')?;
            let (_, path) = rest.split_once("data-path=\"")?;
            let (path, _) = path.split_once('"')?;
            Some((method.to_owned(), path.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn swagger_ui_renders_the_api_in_a_real_browser() {
    if !chromium_available() {
        return;
    }
    let app = TestApp::spawn(TestDatabase::sqlite(), 3, 10).await;
    let dom = rendered_dom(&format!("{}/docs/", app.base), &[]).await;

    assert!(
        dom.contains("<h2 class=\"title\">Stockpile"),
        "the API's title is rendered; the DOM was:\n{dom}"
    );
    let blocks = operation_blocks(&dom);
    for (method, path) in OPERATIONS {
        assert!(
            blocks.contains(&((*method).to_owned(), (*path).to_owned())),
            "no {method} {path} operation block; rendered: {blocks:?}"
        );
    }
}

/// A page that opens an `EventSource` on `stream` and writes each `quote` event into the DOM
/// (its id and price), closing the source after the second, so that the browser goes idle.
fn stream_page(stream: &str) -> String {
    format!(
        r#"<!doctype html><html><body><ol id="events"></ol><script>
const source = new EventSource("{stream}");
let seen = 0;
source.addEventListener("quote", (event) => {{
  const quote = JSON.parse(event.data);
  const item = document.createElement("li");
  item.className = "quote";
  item.textContent = `${{event.lastEventId}} ${{quote.ticker}} ${{quote.price}}`;
  document.getElementById("events").append(item);
  if (++seen === 2) source.close();
}});
</script></body></html>"#
    )
}

/// Serves `page` to every request on a spare loopback port until the test ends; its address.
async fn serve_page(page: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0; 1];
                while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_source_in_a_real_browser_receives_a_quote_after_a_price_upload() {
    if !chromium_available() {
        return;
    }
    let app = TestApp::spawn(TestDatabase::sqlite(), 3, 10).await;
    let ticker = app.json("/api/stocks").await["items"][0]["ticker"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = serve_page(stream_page(&format!(
        "{}/api/stream/quotes?tickers={ticker}",
        app.base
    )))
    .await;
    // The page is not of the server's origin, and the API sends no CORS headers.
    let browser = rendered_dom(&page, &["--disable-web-security"]);
    let upload = async {
        let connected = stockpile_test_support::wait_until(Duration::from_secs(60), || async {
            let metrics = app.get("/metrics").await.text().await.unwrap();
            metrics.contains("stockpile_stream_clients 1\n")
        })
        .await;
        assert!(connected, "the browser never opened the stream");
        let day = crate::support::last_day() + chrono::Days::new(1);
        let uploaded = app
            .admin(reqwest::Method::POST, &format!("/api/stocks/{ticker}/prices"))
            .json(&serde_json::json!({"bars": [
                {"date": day.to_string(), "open": 77.5, "high": 77.5, "low": 77.5, "close": 77.5, "volume": 1}
            ]}))
            .send()
            .await
            .unwrap();
        assert_eq!(uploaded.status(), 200);
    };
    let (dom, ()) = tokio::join!(browser, upload);
    assert!(
        dom.contains(&format!("<li class=\"quote\">2 {ticker} 77.5</li>")),
        "the page got no quote event after the upload; the DOM was:\n{dom}"
    );
    assert!(
        dom.contains(&format!("<li class=\"quote\">1 {ticker} ")),
        "{dom}"
    );
}
