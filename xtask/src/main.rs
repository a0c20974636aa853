//! `cargo xtask <task>`: the project's automation, in Rust so it runs wherever cargo does.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::time::Duration;

use xtask::{
    bench, compression_bench, coverage, create_postgres_database, fleet, fuzz, quotes_bench, run,
    soak, stream_bench, topology_bench, write_bench,
};

const TASKS: &[(&str, &str)] = &[
    (
        "dev",
        "serve locally: PostgreSQL and Redis when they answer, else the embedded defaults",
    ),
    (
        "test",
        "the whole test suite with CI's command; CI also installs tools, starts services, sets CI=true",
    ),
    (
        "openapi",
        "write docs/openapi.json from the binary's document",
    ),
    (
        "bench",
        "[--scale small|large] uncached, cold-miss and hit latency of every read, hit throughput, then the bench-* below but streams; rewrites docs/benchmarks.md",
    ),
    (
        "bench-compression",
        "compressed hits of every read against nginx gzip_static/brotli_static serving the same bytes, bytes on the wire; rewrites its part of docs/benchmarks.md",
    ),
    (
        "bench-quotes",
        "a 100-ticker batch quote against a single detail, hits and cold, in one run; rewrites its part of docs/benchmarks.md",
    ),
    (
        "bench-streams",
        "event latency across two instances over 1,000 writes, memory per idle stream at 2,000, hit throughput beside them; rewrites its part of docs/benchmarks.md",
    ),
    (
        "bench-topologies",
        "hits on a 3-primary Redis Cluster as a share of standalone (first tier off), Sentinel failover blackout; rewrites its part of docs/benchmarks.md",
    ),
    (
        "bench-writes",
        "[--baseline PATH] profile-write and price-upload latency with 10k, 100k and 1M other keys in Redis; rewrites its part of docs/benchmarks.md",
    ),
    (
        "soak",
        "mixed read/write load for --minutes N (default 5): throughput, errors, memory growth",
    ),
    (
        "fleet",
        "[--instances N] [--topology standalone|sentinel|cluster] [--seconds N] N instances behind nginx under mixed load: no 5xx, one ETag per body, no stale read after a write on another instance; throughput, p50/p99, visibility delay",
    ),
    (
        "coverage",
        "line coverage of the whole test suite (cargo-llvm-cov); rewrites docs/reliability.md",
    ),
    (
        "fuzz",
        "every fuzz target (or the one named) for --seconds N each (default 60), on nightly",
    ),
    ("layers", "check that crate dependencies point inward only"),
    (
        "ci",
        "fmt, clippy (warnings denied), the layer check, then the tests",
    ),
];

/// The test command `.ci/run` ends with.
const TEST_COMMAND: [&str; 3] = ["test", "--workspace", "--locked"];

/// The admin token `cargo xtask dev` gives the server when none is exported: the README's, so
/// its examples answer as written.
const DEV_ADMIN_TOKEN: &str = "dev-token-change-me-0123456789abcdef";

/// The database `cargo xtask dev` uses on the local PostgreSQL.
const DEV_DATABASE: &str = "stockpile_dev";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("dev") => dev(),
        Some("test") => cargo(&TEST_COMMAND),
        Some("openapi") => openapi(),
        Some("layers") => layers(),
        Some("bench") => bench::bench(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("bench-compression") => {
            compression_bench::bench_compression(&std::env::args().skip(2).collect::<Vec<_>>())
        }
        Some("bench-quotes") => {
            quotes_bench::bench_quotes(&std::env::args().skip(2).collect::<Vec<_>>())
        }
        Some("bench-topologies") => {
            topology_bench::bench_topologies(&std::env::args().skip(2).collect::<Vec<_>>())
        }
        Some("bench-writes") => {
            write_bench::bench_writes(&std::env::args().skip(2).collect::<Vec<_>>())
        }
        Some("bench-streams") => {
            stream_bench::bench_streams(&std::env::args().skip(2).collect::<Vec<_>>())
        }
        Some("soak") => soak::soak(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("fleet") => fleet::fleet(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("coverage") => coverage::coverage(),
        Some("fuzz") => fuzz::fuzz(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("ci") => cargo(&["fmt", "--all", "--", "--check"])
            .and_then(|()| {
                cargo(&[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ])
            })
            .and_then(|()| layers())
            .and_then(|()| cargo(&TEST_COMMAND)),
        _ => {
            eprintln!("usage: cargo xtask <task>\n");
            for (name, what) in TASKS {
                eprintln!("  {name:<8} {what}");
            }
            return if task.is_none() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str]) -> Result<(), String> {
    run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args(args))
}

fn answers(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

fn dev() -> Result<(), String> {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(["run", "-p", "stockpile", "--", "serve"]);
    let token = dev_admin_token(std::env::var("ADMIN_TOKEN").ok());
    command
        .env("ADMIN_TOKEN", &token)
        .env("LOG_FORMAT", "pretty");
    if let Some(url) = dev_database_url(answers("127.0.0.1:5432"), seed_postgres) {
        command.env("DATABASE_URL", url);
    }
    // The server settles the cache itself, exactly as `cargo run` does.
    if answers("127.0.0.1:6379") {
        println!("cache:    Redis at 127.0.0.1:6379");
    } else {
        println!("cache:    in-process memory; no Redis at 127.0.0.1:6379");
    }
    println!("API:      http://127.0.0.1:8080/api/stocks");
    println!("docs:     http://127.0.0.1:8080/docs/");
    println!("admin:    Authorization: Bearer {token}");
    run(&mut command)
}

/// The `DATABASE_URL` dev serves, `None` for the embedded SQLite: the local PostgreSQL's
/// development database when PostgreSQL answers and `prepare` (creating and seeding it) succeeds.
fn dev_database_url(
    postgres_answers: bool,
    prepare: impl FnOnce(&str) -> Result<(), String>,
) -> Option<String> {
    if !postgres_answers {
        println!("database: embedded SQLite (./stockpile.db); no PostgreSQL at 127.0.0.1:5432");
        return None;
    }
    let url = format!("postgres://postgres@127.0.0.1:5432/{DEV_DATABASE}");
    match prepare(&url) {
        Ok(()) => {
            println!("database: PostgreSQL ({url})");
            Some(url)
        }
        Err(why) => {
            println!(
                "database: embedded SQLite (./stockpile.db): PostgreSQL at 127.0.0.1:5432 \
                 answers but {why}; to use it, create the database \
                 (createdb -h 127.0.0.1 -U postgres {DEV_DATABASE}) for a password-less \
                 postgres role"
            );
            None
        }
    }
}

/// The exported `ADMIN_TOKEN`, else the README's.
fn dev_admin_token(exported: Option<String>) -> String {
    exported.unwrap_or_else(|| DEV_ADMIN_TOKEN.to_owned())
}

/// Creates the development database when it is missing and seeds it when empty (the server
/// seeds only the embedded database by itself).
fn seed_postgres(url: &str) -> Result<(), String> {
    create_postgres_database(DEV_DATABASE);
    let mut seed = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    seed.args(["run", "-p", "stockpile", "--", "seed", "--if-empty"])
        .env("DATABASE_URL", url)
        .env("LOG_FORMAT", "pretty");
    run(&mut seed).map_err(|_| format!("{url} could not be seeded (see above)"))
}

fn openapi() -> Result<(), String> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["run", "--quiet", "-p", "stockpile", "--", "openapi"])
        .output()
        .map_err(|e| format!("could not run the binary: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    std::fs::write("docs/openapi.json", &output.stdout)
        .map_err(|e| format!("could not write docs/openapi.json: {e}"))?;
    println!("wrote docs/openapi.json");
    Ok(())
}

/// Which workspace crates each crate may depend on, and which outside crates it must not.
const RULES: &[(&str, &[&str], &[&str])] = &[
    (
        "stockpile-domain",
        &[],
        &[
            "sea-orm",
            "actix-web",
            "redis",
            "bb8-redis",
            "sqlx",
            "serde",
            "utoipa",
        ],
    ),
    (
        "stockpile-application",
        &["stockpile-domain"],
        &["sea-orm", "actix-web", "redis", "bb8-redis", "sqlx"],
    ),
    (
        "stockpile-infrastructure",
        &["stockpile-domain", "stockpile-application", "migrations"],
        &["actix-web"],
    ),
    (
        "stockpile-api",
        &["stockpile-domain", "stockpile-application"],
        &["sea-orm", "redis", "bb8-redis", "sqlx"],
    ),
];

/// Dependencies a crate may have only as optional ones, and the one crate that may turn each
/// on through the named feature: the application's response bodies derive OpenAPI schemas
/// only for the HTTP layer, so the application itself knows no HTTP.
const OPTIONAL_ONLY: &[(&str, &str, &str, &str)] = &[(
    "stockpile-application",
    "utoipa",
    "openapi",
    "stockpile-api",
)];

/// Crates only tests may use: nothing names them but as a dev-dependency, so nothing that
/// ships builds them.
const DEV_ONLY: &[&str] = &["stockpile-test-support"];

/// The one crate that may depend on the dev-only crates as a normal dependency: the project's
/// automation, which ships nothing either (`fleet` starts the tests' Sentinels and clusters).
const AUTOMATION: &str = "xtask";

fn layers() -> Result<(), String> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let mut violations = Vec::new();
    for (crate_name, allowed_internal, forbidden) in RULES {
        let Some(package) = packages.iter().find(|p| p["name"] == *crate_name) else {
            violations.push(format!("{crate_name} is missing from the workspace"));
            continue;
        };
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            // Dev-dependencies may bring test helpers; the rule is about what ships.
            if dependency["kind"] == "dev" {
                continue;
            }
            let name = dependency["name"].as_str().unwrap_or_default();
            let internal = name.starts_with("stockpile") || dependency["path"].is_string();
            if (internal && !allowed_internal.contains(&name)) || forbidden.contains(&name) {
                violations.push(format!("{crate_name} must not depend on {name}"));
            }
        }
    }
    for (crate_name, dependency_name, feature, only_user) in OPTIONAL_ONLY {
        let normal_dependencies = |package: &serde_json::Value| {
            package["dependencies"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|d| d["kind"] != "dev")
        };
        if let Some(package) = packages.iter().find(|p| p["name"] == *crate_name) {
            if normal_dependencies(package)
                .any(|d| d["name"] == *dependency_name && d["optional"] != true)
            {
                violations.push(format!(
                    "{crate_name} may depend on {dependency_name} only as an optional dependency \
                     (feature {feature})"
                ));
            }
        }
        for package in packages.iter().filter(|p| p["name"] != *only_user) {
            let turns_it_on = normal_dependencies(package).any(|d| {
                d["name"] == *crate_name
                    && d["features"]
                        .as_array()
                        .is_some_and(|features| features.iter().any(|f| f == feature))
            });
            if turns_it_on {
                violations.push(format!(
                    "{} must not turn on {crate_name}'s {feature} feature; only {only_user} does",
                    package["name"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    for package in &packages {
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let name = dependency["name"].as_str().unwrap_or_default();
            if DEV_ONLY.contains(&name)
                && dependency["kind"] != "dev"
                && package["name"] != AUTOMATION
            {
                violations.push(format!(
                    "{} may name {name} only as a dev-dependency",
                    package["name"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    if violations.is_empty() {
        println!("layers: dependencies point inward only");
        Ok(())
    } else {
        Err(violations.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readme() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap()
    }

    #[test]
    fn the_readme_lists_every_task_and_no_other() {
        let readme = readme();
        let listed: Vec<&str> = readme
            .lines()
            .filter_map(|line| line.strip_prefix("| `cargo xtask "))
            .filter_map(|rest| rest.split([' ', '`']).next())
            .collect();
        let tasks: Vec<&str> = TASKS.iter().map(|(name, _)| *name).collect();
        assert_eq!(listed, tasks);
    }

    #[test]
    fn dev_gives_the_exported_admin_token_else_the_readmes() {
        assert!(readme().contains(&format!("export ADMIN_TOKEN={DEV_ADMIN_TOKEN}\n")));
        assert_eq!(dev_admin_token(None), DEV_ADMIN_TOKEN);
        assert_eq!(dev_admin_token(Some("mine".into())), "mine");
    }

    #[test]
    fn dev_serves_the_embedded_database_when_postgresql_cannot_be_prepared() {
        let unprepared = |_: &str| -> Result<(), String> { panic!("nothing to prepare") };
        assert_eq!(dev_database_url(false, unprepared), None);
        assert_eq!(dev_database_url(true, |_| Err("no psql".into())), None);
        assert_eq!(
            dev_database_url(true, |_| Ok(())).as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/stockpile_dev")
        );
    }

    #[test]
    fn test_runs_the_command_ci_ends_with() {
        let ci =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/run")).unwrap();
        let last_command = ci
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap();
        assert_eq!(last_command, format!("cargo {}", TEST_COMMAND.join(" ")));
    }
}
