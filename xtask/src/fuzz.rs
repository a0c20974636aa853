//! `cargo xtask fuzz [--seconds N] [TARGET]`: the cargo-fuzz targets in `fuzz/` (every one, or
//! the one named), each for a bounded time, on the nightly toolchain that libFuzzer needs.
//! It installs cargo-fuzz when it is missing and reports per target the executions, the
//! coverage reached and whether anything was found. Not part of CI: a minute per target is
//! too long there, and nightly is not what CI builds with.
//!
//! Each target's corpus grows in `fuzz/corpus/<target>` (git-ignored) from the seeds in
//! `fuzz/seeds/<target>`, so later runs start where earlier ones stopped. A finding leaves its
//! input in `fuzz/artifacts/<target>/`; the full libFuzzer log of every run is in
//! `fuzz/target/logs/<target>.log`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const DEFAULT_SECONDS: u64 = 60;
/// One input that runs this long is a finding: every parser here should take microseconds.
const SLOW_INPUT_SECONDS: u64 = 10;

/// What one bounded run of a target came to.
struct Outcome {
    target: String,
    seconds: u64,
    executions: Option<u64>,
    coverage: Option<u64>,
    /// `None` when the run ended by its time limit; otherwise the finding and its input.
    finding: Option<String>,
}

pub fn fuzz(args: &[String]) -> Result<(), String> {
    let (seconds, only) = parse_args(args)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("xtask is not inside the repository")?;
    crate::ensure_cargo_subcommand("fuzz")?;
    let mut targets = list_targets(root)?;
    if let Some(only) = only {
        if !targets.contains(&only) {
            return Err(format!(
                "no fuzz target {only}; there are: {}",
                targets.join(", ")
            ));
        }
        targets = vec![only];
    }
    // The sanitizer is off: the code under test forbids `unsafe`, so what fuzzing can find is
    // panics and broken invariants, and without AddressSanitizer the runs are about twice as fast.
    crate::run(nightly_fuzz(root).args(["build", "--fuzz-dir", "fuzz", "-s", "none"]))?;
    let logs = root.join("fuzz/target/logs");
    fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let mut outcomes = Vec::new();
    for target in &targets {
        println!("fuzz: {target} for {seconds} s");
        outcomes.push(run_target(root, &logs, target, seconds)?);
    }
    report(&outcomes);
    let found = outcomes.iter().filter(|o| o.finding.is_some()).count();
    if found == 0 {
        Ok(())
    } else {
        Err(format!("{found} target(s) found something; see above"))
    }
}

fn parse_args(args: &[String]) -> Result<(u64, Option<String>), String> {
    let usage = "usage: cargo xtask fuzz [--seconds N] [TARGET]";
    let mut seconds = DEFAULT_SECONDS;
    let mut target = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or(format!("--seconds needs a positive number\n{usage}"))?;
            }
            name if !name.starts_with('-') && target.is_none() => target = Some(name.to_owned()),
            other => return Err(format!("unexpected argument {other}\n{usage}")),
        }
    }
    Ok((seconds, target))
}

/// `cargo +nightly fuzz`, run from the repository root. The rustup proxy picks the toolchain,
/// so this is `cargo` from `PATH`, not the stable `$CARGO` that runs xtask.
fn nightly_fuzz(root: &Path) -> Command {
    let mut command = Command::new("cargo");
    command.args(["+nightly", "fuzz"]).current_dir(root);
    command
}

fn list_targets(root: &Path) -> Result<Vec<String>, String> {
    let output = nightly_fuzz(root)
        .args(["list", "--fuzz-dir", "fuzz"])
        .output()
        .map_err(|e| format!("cargo fuzz list: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo fuzz list: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

fn run_target(root: &Path, logs: &Path, target: &str, seconds: u64) -> Result<Outcome, String> {
    let corpus = root.join("fuzz/corpus").join(target);
    fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let seeds = root.join("fuzz/seeds").join(target);
    let mut command = nightly_fuzz(root);
    command
        .args(["run", "--fuzz-dir", "fuzz", "-s", "none", target])
        .arg(&corpus);
    if seeds.is_dir() {
        command.arg(&seeds);
    }
    command
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={SLOW_INPUT_SECONDS}"))
        .arg("-print_final_stats=1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cargo fuzz run {target}: {e}"))?;
    // libFuzzer reports on stderr; cargo-fuzz's summary of a finding goes to stdout.
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let out_thread = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    lines.extend(out_thread.join().unwrap_or_default());
    let status = child
        .wait()
        .map_err(|e| format!("cargo fuzz run {target}: {e}"))?;
    let log = logs.join(format!("{target}.log"));
    fs::write(&log, lines.join("\n") + "\n").map_err(|e| format!("{}: {e}", log.display()))?;

    let finding = (!status.success()).then(|| {
        let what = lines
            .iter()
            .find(|l| l.contains("panicked at") || l.starts_with("==") && l.contains("ERROR"))
            .or_else(|| {
                lines
                    .iter()
                    .find(|l| l.contains("ALARM") || l.contains("out-of-memory"))
            })
            .map_or("the run failed", String::as_str);
        let input = lines
            .iter()
            .find_map(|l| l.split("Test unit written to ").nth(1))
            .unwrap_or("no input saved");
        format!("{} (input: {input}; log: {})", what.trim(), log.display())
    });
    Ok(Outcome {
        target: target.to_owned(),
        seconds: started.elapsed().as_secs(),
        executions: last_number_after(&lines, "stat::number_of_executed_units:"),
        coverage: last_number_after(&lines, " cov: "),
        finding,
    })
}

/// The number following the last occurrence of `marker` in libFuzzer's output.
fn last_number_after(lines: &[String], marker: &str) -> Option<u64> {
    lines.iter().rev().find_map(|line| {
        let rest = line.split(marker).nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn report(outcomes: &[Outcome]) {
    println!();
    println!(
        "{:<20} {:>8} {:>14} {:>10} {:>9}  result",
        "target", "seconds", "executions", "exec/s", "coverage"
    );
    let show = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    for o in outcomes {
        let rate = o.executions.map(|n| n / o.seconds.max(1));
        println!(
            "{:<20} {:>8} {:>14} {:>10} {:>9}  {}",
            o.target,
            o.seconds,
            show(o.executions),
            show(rate),
            show(o.coverage),
            o.finding.as_deref().unwrap_or("nothing found"),
        );
    }
}
