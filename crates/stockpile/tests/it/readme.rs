//! The README's first minutes, as a newcomer lives them: the server started the way "Two
//! commands" says (the embedded defaults and the README's `ADMIN_TOKEN`), then every command of
//! "Try it" run by bash and curl, each checked against what the README claims of it.

use std::path::Path;

use stockpile::settings::Secret;
use stockpile::Settings;
use stockpile_test_support::skip_or_fail;

use crate::support::{TestApp, TestDatabase};

/// Where the README's commands send their requests.
const README_BASE: &str = "http://localhost:8080";

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The first `sh` block under `heading`.
fn shell_block(readme: &str, heading: &str) -> String {
    readme
        .split(&format!("\n{heading}\n"))
        .nth(1)
        .and_then(|section| section.split("```sh\n").nth(1))
        .and_then(|block| block.split("```").next())
        .unwrap_or_else(|| panic!("no sh block under {heading}"))
        .to_owned()
}

/// A command of a block, continuation lines joined, and the comment after it.
struct Command {
    text: String,
    claim: Option<String>,
}

fn commands(block: &str) -> Vec<Command> {
    block
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| match line.split_once("  # ") {
            Some((text, claim)) => Command {
                text: text.trim().to_owned(),
                claim: Some(claim.trim().to_owned()),
            },
            None => Command {
                text: line.to_owned(),
                claim: None,
            },
        })
        .collect()
}

/// The token "Two commands" exports.
fn readme_token(readme: &str) -> String {
    commands(&shell_block(readme, "## Two commands"))
        .iter()
        .find_map(|command| command.text.strip_prefix("export ADMIN_TOKEN="))
        .expect("Two commands exports ADMIN_TOKEN")
        .to_owned()
}

/// Runs `command` against `app` as the README's shell would; its output, or why it failed.
async fn run(command: &str, app: &TestApp, token: &str, curl_home: &Path) -> String {
    let output = tokio::process::Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            &command.replace(README_BASE, &app.base),
        ])
        .env("ADMIN_TOKEN", token)
        // Its `.curlrc` makes every answer of 400 and above a failure of the command.
        .env("CURL_HOME", curl_home)
        .output()
        .await
        .unwrap_or_else(|e| panic!("bash: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).to_ascii_lowercase();
    assert!(
        output.status.success(),
        "`{command}` failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Starts the server as "Two commands" does, with `adjust` applied to the embedded defaults,
/// and runs "Try it" against it.
async fn try_it(adjust: impl FnOnce(&mut Settings)) {
    // Seeding the whole universe is heavy enough to starve the timing of the load tests.
    let _heavy = crate::support::one_heavy_test_at_a_time().await;
    let found = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok()
    };
    if !found("bash") || !found("curl") {
        skip_or_fail("the README's commands need bash and curl on PATH");
        return;
    }
    let readme = readme();
    let token = readme_token(&readme);
    let database = TestDatabase::sqlite();
    let mut settings = Settings::default();
    settings.http.bind_addr = "127.0.0.1:0".into();
    settings.database.url = serde_json::from_value(database.url().into()).unwrap();
    settings.admin.token = Some(serde_json::from_value::<Secret>(token.clone().into()).unwrap());
    // Other tests and instances may share the default Redis: a namespace of this test's own.
    settings.cache.key_prefix = format!("readme-{}:", uuid::Uuid::new_v4().simple());
    adjust(&mut settings);
    // All 517 companies, as the first start seeds them, over the year the examples ask for.
    let app = TestApp::spawn_with(settings, database, 517, 260).await;
    let curl_home = std::env::temp_dir().join(format!("readme-curl-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&curl_home).unwrap();
    std::fs::write(curl_home.join(".curlrc"), "fail\nmax-time = 30\n").unwrap();

    let status = app.json("/api/cache/status").await;
    assert_eq!(status["degraded"], false, "the embedded default: {status}");
    for command in commands(&shell_block(&readme, "## Try it")) {
        let output = run(&command.text, &app, &token, &curl_home).await;
        match command.claim.as_deref() {
            None | Some("detail and latest quote" | "a watchlist at once") => {}
            Some("MISS, then HIT") => {
                assert!(output.contains("x-cache: miss"), "{output}");
                let again = run(&command.text, &app, &token, &curl_home).await;
                assert!(again.contains("x-cache: hit"), "{again}");
            }
            Some("br, ETag \"…-br\"") => assert!(
                output.contains("content-encoding: br") && output.contains("-br\""),
                "{output}"
            ),
            Some(claim) => panic!(
                "the README claims `{claim}` of `{}`: check it here",
                command.text
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&curl_home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_it_answers_as_the_readme_says_on_the_embedded_defaults() {
    try_it(|_| {}).await;
}

/// On a machine without Redis the embedded default settles on memory, as `REDIS_ENABLED=false`
/// does; this runs that case whether or not a Redis answers here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_it_answers_as_the_readme_says_without_redis() {
    try_it(|settings| settings.redis.enabled = false).await;
}
