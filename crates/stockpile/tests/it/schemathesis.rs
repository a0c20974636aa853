//! An API-level fuzz run: schemathesis generates requests from the OpenAPI document the server
//! serves (boundary values, random valid and invalid data, and chains of calls along the
//! document's links) and checks that no answer is a 5xx and that every answer matches the
//! document: a documented status code, its content type, its headers and its schema.
//!
//! Schemathesis comes from PyPI; `.ci/run` installs a pinned version into a virtual environment
//! and points `SCHEMATHESIS` at its `st`. Without it the test skips loudly, except under `CI=true`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{one_heavy_test_at_a_time, TestApp, TestDatabase, ADMIN_TOKEN};

/// The variable naming the `st` executable; `st` on `PATH` is used when it is unset.
const SCHEMATHESIS_VAR: &str = "SCHEMATHESIS";

/// "No 5xx, and every answer as the document describes it."
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

/// Test cases per operation and phase: each run takes about a minute on a 2-core machine.
const MAX_EXAMPLES: &str = "25";

/// A request the server has not answered by then is a failure of its own (a hang is a bug too).
const REQUEST_TIMEOUT_SECONDS: &str = "10";

/// Far more than a run needs; a hung run fails the test instead of holding up CI.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// A working directory of its own, removed afterwards: schemathesis keeps state (`.hypothesis`,
/// `.schemathesis`) in the directory it runs in.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `st` executable: `SCHEMATHESIS`, else `st` on `PATH`; without one, fails under
/// `CI=true` or says loudly that the test is skipped.
fn schemathesis() -> Option<PathBuf> {
    let found = std::env::var_os(SCHEMATHESIS_VAR)
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join("st"))
                .find(|st| st.is_file())
        });
    if let Some(st) = found {
        assert!(
            st.is_file(),
            "{SCHEMATHESIS_VAR}={} is not a file",
            st.display()
        );
        return Some(st);
    }
    stockpile_test_support::skip_or_fail(&format!(
        "schemathesis not found (set {SCHEMATHESIS_VAR}=/path/to/st or put `st` on PATH; .ci/run installs it)"
    ));
    None
}

/// Runs schemathesis against `app` and fails the test, with its report, on any failure.
async fn fuzz(st: &Path, app: &TestApp, backend: &str) {
    let work = WorkDir(
        std::env::temp_dir().join(format!("stockpile-schemathesis-{}", uuid::Uuid::new_v4())),
    );
    std::fs::create_dir_all(&work.0).unwrap();
    let started = Instant::now();
    let run = tokio::process::Command::new(st)
        .arg("run")
        .arg(format!("{}/api-docs/openapi.json", app.base))
        .args(["--checks", CHECKS])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--request-timeout", REQUEST_TIMEOUT_SECONDS])
        // Every request carries the admin token, so the writes and the cache administration
        // are exercised for real (the coverage phase still tries them without it).
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args(["--generation-database", "none", "--no-color"])
        // A live-quote stream never ends, so every valid request for one would time out; its
        // refusals are tested in `crates/stockpile-api/tests/it/streams.rs`.
        .args(["--exclude-operation-id", "stream_quotes"])
        .current_dir(&work.0)
        .kill_on_drop(true)
        .output();
    // Awaited, not blocking: the server answers on this same runtime.
    let output = tokio::time::timeout(RUN_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| {
            panic!("schemathesis ({backend}) did not finish within {RUN_TIMEOUT:?}")
        })
        .unwrap_or_else(|e| panic!("could not run {}: {e}", st.display()));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures over {backend} ({}); its report:\n{report}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // Its count line, such as "1070 generated, 1070 passed".
    let cases = report
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or("");
    eprintln!(
        "schemathesis over {backend}: {} in {:.0?}",
        cases.trim(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let Some(st) = schemathesis() else {
        return;
    };
    // Two Python processes keep both cores busy for about a minute.
    let _turn = one_heavy_test_at_a_time().await;
    // Both backends, side by side: each can fail where the other does not (PostgreSQL
    // refused a NUL in text that SQLite stored).
    let sqlite = TestApp::spawn(TestDatabase::sqlite(), 5, 60).await;
    let postgres = match TestDatabase::postgres().await {
        Some(database) => Some(TestApp::spawn(database, 5, 60).await),
        None => None,
    };
    let over_postgres = async {
        if let Some(app) = &postgres {
            fuzz(&st, app, "PostgreSQL").await;
        }
    };
    tokio::join!(fuzz(&st, &sqlite, "SQLite"), over_postgres);
}
