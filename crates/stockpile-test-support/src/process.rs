//! Server processes that never outlive the test process, and `redis-cli`.
//!
//! Each server runs under a small `sh` that holds the read end of a pipe from this process:
//! when the pipe closes (a kill, a drop, or this process ending for any reason, a panic or a
//! SIGKILL included) the shell kills the server with SIGKILL and reaps it. So a server shared
//! by every test of a binary, in a static that is never dropped, still goes with the binary.

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::wait_until;

/// The shell around every server: starts it, and kills it (SIGKILL) once the pipe on fd 3
/// closes; ends when the server ends, by itself or killed. (An asynchronous list reads
/// /dev/null unless told otherwise, hence fd 3.)
const GUARD: &str = r#"exec 3<&0
"$@" </dev/null 3<&- & server=$!
{ read -r _ <&3; kill -9 "$server" 2>/dev/null; } & reader=$!
exec 3<&-
wait "$server"; status=$?
kill "$reader" 2>/dev/null
exit $status"#;

pub(crate) struct Process {
    /// The guarding shell, whose stdin is the pipe.
    guard: Child,
}

impl Process {
    /// Starts `program args…` under the guard; `None` when `sh` cannot be started.
    pub(crate) fn spawn<I, S>(program: &str, args: I) -> Option<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Command::new("sh")
            .args(["-c", GUARD, "sh", program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(|guard| Self { guard })
    }

    /// Whether the server (and so its guard) has ended by itself, as one that cannot start does.
    pub(crate) fn has_ended(&mut self) -> bool {
        !matches!(self.guard.try_wait(), Ok(None))
    }

    /// Kills the server at once (SIGKILL) and returns once it is gone.
    pub(crate) async fn kill(mut self) {
        drop(self.guard.stdin.take());
        let gone = wait_until(Duration::from_secs(10), || {
            std::future::ready(self.has_ended())
        })
        .await;
        assert!(gone, "a killed server did not end within 10 s");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Closing the pipe is the kill.
        drop(self.guard.stdin.take());
    }
}

/// Runs `redis-cli args…` and returns what it printed, trimmed; `Err` with its output when it
/// cannot run, fails, or takes over 60 s.
pub async fn redis_cli<I, S>(args: I) -> Result<String, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let run = tokio::process::Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .map_err(|_| "redis-cli took over 60 s".to_owned())?
        .map_err(|e| format!("redis-cli: {e}"))?;
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() {
        Ok(printed)
    } else {
        Err(format!(
            "redis-cli failed ({}): {printed} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
