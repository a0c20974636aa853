//! The tasks of `cargo xtask`, as a library too: the fleet test of the `stockpile` crate runs
//! [`fleet::run`] at a small bound against the binary it builds.

pub mod bench;
pub mod compression_bench;
pub mod coverage;
pub mod fleet;
pub mod fuzz;
mod harness;
pub mod quotes_bench;
pub mod soak;
pub mod stream_bench;
pub mod topology_bench;
pub mod write_bench;

use std::process::{Command, Stdio};

pub fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("could not run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed with {status}"))
    }
}

/// Installs `cargo-<name>` from crates.io unless `cargo <name>` already runs.
pub fn ensure_cargo_subcommand(name: &str) -> Result<(), String> {
    let installed = Command::new("cargo")
        .args([name, "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Ok(());
    }
    println!("xtask: installing cargo-{name} from crates.io");
    run(Command::new("cargo").args(["install", &format!("cargo-{name}"), "--locked"]))
}

/// Replaces the `section` of the Markdown file at `path` that starts and ends with the markers
/// that are the section's first and last lines (`<!-- name:start -->`, `<!-- name:end -->`);
/// without them, appends it, under `title` when the file is new.
pub fn replace_section(path: &str, title: &str, section: &str) -> Result<(), String> {
    let start_marker = section.lines().next().unwrap_or_default();
    let end_marker = section.lines().last().unwrap_or_default();
    let current = std::fs::read_to_string(path).unwrap_or_default();
    let updated = match (current.find(start_marker), current.find(end_marker)) {
        (Some(start), Some(end)) => format!(
            "{}{section}{}",
            &current[..start],
            &current[end + end_marker.len()..]
        ),
        _ if current.is_empty() => format!("{title}\n\n{section}\n"),
        _ => format!("{current}\n{section}\n"),
    };
    std::fs::write(path, updated).map_err(|e| format!("could not write {path}: {e}"))?;
    println!("updated {path}");
    Ok(())
}

pub fn create_postgres_database(name: &str) {
    // Fails harmlessly when the database already exists, or psql is missing: seeding, which
    // comes next, says whether the database is there.
    let _ = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ])
        .output();
}
