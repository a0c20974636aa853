//! `cargo xtask coverage`: the line coverage of the whole test suite, measured with LLVM's
//! source-based coverage through cargo-llvm-cov (installed from crates.io when missing). It
//! prints the line coverage of every crate, of the cache adapters and the cache-aside layer,
//! and of the workspace, rewrites those figures in `docs/reliability.md`, and leaves an HTML
//! report in `target/llvm-cov/html/`. Not part of CI: an instrumented build and run of every
//! test takes far longer than CI's budget allows on two cores.
//!
//! Only the crates' `src/` counts: tests, the test-support crate, `xtask` and `fuzz` are the
//! means of measuring, not what is measured. Tests that start the `stockpile` binary with an
//! empty environment add nothing to its figures, since its profile has nowhere to go.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The parts of the code the issue sets targets for, beside the crates: (name, path prefix).
const PARTS: &[(&str, &str)] = &[
    (
        "cache adapters",
        "crates/stockpile-infrastructure/src/cache/",
    ),
    (
        "cache-aside layer",
        "crates/stockpile-application/src/cache_aside",
    ),
];

/// Lines covered and lines counted.
#[derive(Debug, Default, Clone, Copy)]
struct Lines {
    covered: u64,
    count: u64,
}

impl Lines {
    fn add(&mut self, other: Lines) {
        self.covered += other.covered;
        self.count += other.count;
    }

    fn percent(self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.covered as f64 / self.count as f64 * 100.0
        }
    }
}

pub fn coverage() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask is not inside the repository")?;
    crate::ensure_cargo_subcommand("llvm-cov")?;
    let (llvm_cov, llvm_profdata) = llvm_tools()?;
    let llvm_cov_command = || {
        let mut command = Command::new("cargo");
        command
            .arg("llvm-cov")
            .current_dir(root)
            .env("LLVM_COV", &llvm_cov)
            .env("LLVM_PROFDATA", &llvm_profdata);
        command
    };
    // A failing test still leaves the coverage of all the others: report it, then fail.
    let tests = crate::run(llvm_cov_command().args([
        "--workspace",
        "--exclude",
        "xtask",
        "--no-fail-fast",
        "--no-report",
    ]));
    crate::run(llvm_cov_command().args(["report", "--html"]))?;
    let summary = llvm_cov_command()
        .args(["report", "--json", "--summary-only"])
        .output()
        .map_err(|e| format!("cargo llvm-cov report: {e}"))?;
    if !summary.status.success() {
        return Err(String::from_utf8_lossy(&summary.stderr).into_owned());
    }
    let summary: serde_json::Value = serde_json::from_slice(&summary.stdout)
        .map_err(|e| format!("cargo llvm-cov's summary is not JSON: {e}"))?;
    let root_prefix = format!("{}/", root.display());
    let files = summary["data"][0]["files"]
        .as_array()
        .ok_or("cargo llvm-cov's summary lists no files")?
        .iter()
        .filter_map(|file| {
            let name = file["filename"].as_str()?.strip_prefix(&root_prefix)?;
            let lines = &file["summary"]["lines"];
            let lines = Lines {
                covered: lines["covered"].as_u64()?,
                count: lines["count"].as_u64()?,
            };
            Some((name.to_owned(), lines))
        });
    let table = table(files);
    println!("{table}");
    rewrite_reliability(&table)?;
    tests.map_err(|e| format!("the coverage is written, but tests failed: {e}"))
}

/// The crate a measured file belongs to: `crates/<crate>/src/…` or `migrations/src/…`;
/// `None` for what is not measured.
fn crate_of(file: &str) -> Option<&str> {
    let (folder, rest) = match file.strip_prefix("crates/") {
        Some(inside) => inside.split_once('/')?,
        None => ("migrations", file.strip_prefix("migrations/")?),
    };
    (rest.starts_with("src/") && folder != "stockpile-test-support").then_some(folder)
}

/// The Markdown table of the crates, the parts and the workspace.
fn table(files: impl Iterator<Item = (String, Lines)>) -> String {
    let mut crates: BTreeMap<String, Lines> = BTreeMap::new();
    let mut parts = vec![Lines::default(); PARTS.len()];
    let mut workspace = Lines::default();
    for (file, lines) in files {
        let Some(name) = crate_of(&file) else {
            continue;
        };
        crates.entry(name.to_owned()).or_default().add(lines);
        for (part, (_, prefix)) in parts.iter_mut().zip(PARTS) {
            if file.starts_with(prefix) {
                part.add(lines);
            }
        }
        workspace.add(lines);
    }
    let row = |name: &str, lines: Lines| {
        format!(
            "| {name} | {:.1} % | {} / {} |\n",
            lines.percent(),
            lines.covered,
            lines.count
        )
    };
    let mut table = String::from("| Code | Lines covered | Covered / counted |\n|---|---|---|\n");
    for (name, lines) in &crates {
        table.push_str(&row(&format!("`{name}`"), *lines));
    }
    for ((name, _), lines) in PARTS.iter().zip(parts) {
        table.push_str(&row(name, lines));
    }
    table.push_str(&row("**workspace**", workspace));
    table
}

/// Writes the table between the coverage markers of `docs/reliability.md`.
fn rewrite_reliability(table: &str) -> Result<(), String> {
    let section = format!(
        "<!-- coverage:start -->\nMeasured {} on {} with `cargo xtask coverage` (the whole test \
         suite under LLVM's source-based coverage; tests that need a server absent here \
         skipped):\n\n{table}<!-- coverage:end -->",
        crate::harness::today(),
        crate::harness::machine()
    );
    crate::replace_section("docs/reliability.md", "# Reliability", &section)
}

/// `llvm-cov` and `llvm-profdata` of rustc's own LLVM version (an older LLVM cannot read the
/// profiles): rustup's `llvm-tools` component when installed, else Debian's `llvm-<major>`,
/// installed with apt-get when missing.
fn llvm_tools() -> Result<(String, String), String> {
    let rustc = Command::new("rustc")
        .args(["--version", "--verbose"])
        .output()
        .map_err(|e| format!("rustc --version: {e}"))?;
    let rustc = String::from_utf8_lossy(&rustc.stdout).into_owned();
    let field = |name: &str| {
        rustc
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .ok_or(format!("rustc --version --verbose has no {name}"))
    };
    let host = field("host:")?;
    let major = field("LLVM version:")?
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("rustc --print sysroot: {e}"))?;
    let component = Path::new(String::from_utf8_lossy(&sysroot.stdout).trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin");
    if component.join("llvm-profdata").is_file() {
        let tool = |name: &str| component.join(name).display().to_string();
        return Ok((tool("llvm-cov"), tool("llvm-profdata")));
    }
    let debian = |name: &str| format!("/usr/bin/{name}-{major}");
    if !Path::new(&debian("llvm-profdata")).is_file() {
        println!("coverage: installing llvm-{major} (rustc's LLVM) from Debian's packages");
        crate::run(Command::new("apt-get").args([
            "install",
            "-y",
            "-qq",
            &format!("llvm-{major}"),
        ]))?;
    }
    Ok((debian("llvm-cov"), debian("llvm-profdata")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_crates_sources_are_measured() {
        assert_eq!(
            crate_of("crates/stockpile-api/src/lib.rs"),
            Some("stockpile-api")
        );
        assert_eq!(crate_of("migrations/src/lib.rs"), Some("migrations"));
        assert_eq!(crate_of("crates/stockpile-api/tests/it/main.rs"), None);
        assert_eq!(crate_of("crates/stockpile-test-support/src/lib.rs"), None);
        assert_eq!(crate_of("xtask/src/main.rs"), None);
    }

    #[test]
    fn the_table_sums_crates_parts_and_workspace() {
        let lines = |covered, count| Lines { covered, count };
        let table = table(
            [
                (
                    "crates/stockpile-infrastructure/src/cache/memory.rs",
                    lines(9, 10),
                ),
                ("crates/stockpile-infrastructure/src/lib.rs", lines(1, 10)),
                ("crates/stockpile-api/tests/it/main.rs", lines(0, 50)),
            ]
            .into_iter()
            .map(|(file, lines)| (file.to_owned(), lines)),
        );
        assert!(table.contains("| `stockpile-infrastructure` | 50.0 % | 10 / 20 |"));
        assert!(table.contains("| cache adapters | 90.0 % | 9 / 10 |"));
        assert!(table.contains("| **workspace** | 50.0 % | 10 / 20 |"));
    }
}
