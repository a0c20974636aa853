//! Swagger UI at `/docs/` renders the API in a real browser: headless Chromium loads the page
//! the binary serves (its vendored assets and the OpenAPI document, no CDN), runs Swagger UI's
//! JavaScript and dumps the resulting DOM, in which every operation is an `opblock`.

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

/// The DOM of `url` after the page's scripts ran, as headless Chromium serialises it.
async fn rendered_dom(url: &str) -> String {
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
    let dom = rendered_dom(&format!("{}/docs/", app.base)).await;

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
