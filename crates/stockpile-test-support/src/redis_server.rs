//! A `redis-server` of the test's own on a spare loopback port: started, killed as a crash
//! would (SIGKILL) and started again on the same port and directory.

use std::ffi::OsString;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::{skip_or_fail, spare_port, wait_until, TempDir};

/// How long a starting server may take to answer `PING`.
const START_WITHIN: Duration = Duration::from_secs(10);

pub struct RedisServer {
    port: u16,
    /// Its working directory: `SAVE` writes there, and a restart loads what it wrote.
    dir: TempDir,
    /// Arguments after the built-in ones (a later one wins in Redis).
    extra: Vec<OsString>,
    child: Option<Child>,
}

impl RedisServer {
    /// A running server, or `None` after [`skip_or_fail`] when `redis-server` cannot start.
    pub async fn start() -> Option<Self> {
        Self::start_with(std::iter::empty::<&str>()).await
    }

    /// As [`Self::start`], with more `redis-server` arguments (`["--maxmemory", "1mb"]`).
    pub async fn start_with<I, S>(extra: I) -> Option<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut server = Self::stopped(spare_port(), extra.into_iter().map(Into::into).collect());
        if server.restart().await {
            Some(server)
        } else {
            skip_or_fail(&format!(
                "redis-server did not start on port {} (is it installed?)",
                server.port
            ));
            None
        }
    }

    /// A server that [`Self::restart`] starts on `port`.
    pub(crate) fn stopped(port: u16, extra: Vec<OsString>) -> Self {
        Self {
            port,
            dir: TempDir::new("redis"),
            extra,
            child: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Starts it (again) on the same port, loading what `SAVE` last wrote; true once it
    /// answers `PING`.
    pub async fn restart(&mut self) -> bool {
        self.spawn() && wait_until(START_WITHIN, || ping(self.port)).await
    }

    /// Starts the process without waiting for it to answer; false when it cannot be spawned.
    pub(crate) fn spawn(&mut self) -> bool {
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .args(&self.extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(child) => {
                self.child = Some(child);
                true
            }
            Err(_) => false,
        }
    }

    /// Kills it at once (SIGKILL), as a crash would; returns once the process is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// Whether a Redis (or a Sentinel) on the loopback `port` answers `PING` with `PONG`.
pub async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.ok()?;
        let mut reply = [0_u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(true))
    )
}
