//! A `redis-server` of the test's own on a spare loopback port: started, killed as a crash
//! would (SIGKILL) and started again on the same port and directory. Sentinels, cluster nodes
//! and TLS servers are the same thing with other arguments.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::{redis_cli, Process};
use crate::tls::Certificates;
use crate::{ready_or_skip, spare_port, wait_until, TempDir};

/// How long a starting server may take to answer `PING`.
const START_WITHIN: Duration = Duration::from_secs(10);

pub struct RedisServer {
    port: u16,
    /// Its working directory: `SAVE` writes there, and a restart loads what it wrote.
    dir: TempDir,
    /// A configuration file, given first (a Sentinel needs one it can rewrite).
    config: Option<PathBuf>,
    /// Arguments after the built-in ones (a later one wins in Redis).
    extra: Vec<OsString>,
    /// How to tell that it answers.
    probe: Probe,
    process: Option<Process>,
}

/// How a server is asked whether it answers.
#[derive(Debug, Clone)]
pub(crate) enum Probe {
    /// `PING` over plain TCP on its port.
    Plain,
    /// `redis-cli <these arguments> PING`, for a server that speaks TLS only.
    Cli(Vec<OsString>),
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
        Self::configured(spare_port(), None, extra, Probe::Plain).await
    }

    /// A server on `port` started with `config` (if any) and `extra`, speaking TLS only (and
    /// to its primary, if it replicates) when `tls` is given; once it answers.
    pub(crate) async fn node(
        port: u16,
        config: Option<PathBuf>,
        extra: Vec<OsString>,
        tls: Option<&Certificates>,
    ) -> Option<Self> {
        match tls {
            None => Self::configured(port, config, extra, Probe::Plain).await,
            Some(tls) => {
                let mut args = tls.server_args(port);
                args.extend(["--tls-replication".into(), "yes".into()]);
                args.extend(extra);
                Self::configured(port, config, args, Probe::Cli(tls.cli_args(port))).await
            }
        }
    }

    /// A server on `port` started with `config` (if any) and `extra`, once `probe` says it
    /// answers; `None` after [`skip_or_fail`] otherwise.
    pub(crate) async fn configured<I, S>(
        port: u16,
        config: Option<PathBuf>,
        extra: I,
        probe: Probe,
    ) -> Option<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut server = Self {
            port,
            dir: TempDir::new("redis"),
            config,
            extra: extra.into_iter().map(Into::into).collect(),
            probe,
            process: None,
        };
        let ready = server.restart().await;
        ready_or_skip(ready, server, |server| {
            format!(
                "redis-server did not start on port {} (is it installed?){}",
                server.port,
                server.log_tail()
            )
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its working directory (its log is `redis.log` there).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The last lines of its log, for a message saying why it failed (gone with the server).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir().join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!("; its log ends:\n{tail}")
        }
    }

    /// Whether it is running (not killed, not ended by itself).
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|process| !process.has_ended())
    }

    /// Starts it (again) on the same port, loading what `SAVE` last wrote; true once it
    /// answers.
    pub async fn restart(&mut self) -> bool {
        let mut args: Vec<OsString> = Vec::new();
        args.extend(self.config.iter().map(Into::into));
        for arg in ["--port", &self.port.to_string(), "--bind", "127.0.0.1"] {
            args.push(arg.into());
        }
        // A replica syncs at once, not after the 5 s that let more replicas share a sync.
        for arg in [
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ] {
            args.push(arg.into());
        }
        args.push("--dir".into());
        args.push(self.dir.path().into());
        args.push("--logfile".into());
        args.push(self.dir.path().join("redis.log").into());
        args.extend(self.extra.iter().cloned());
        let Some(mut process) = Process::spawn("redis-server", &args) else {
            return false;
        };
        let (probe, port) = (&self.probe, self.port);
        // Stops early when the server ends by itself (a port taken, a bad argument).
        let settled = wait_until(START_WITHIN, || {
            let ended = process.has_ended();
            async move { ended || probe.answers(port).await }
        })
        .await;
        let up = settled && !process.has_ended();
        self.process = Some(process);
        up
    }

    /// `redis-cli` against it (over TLS for a TLS server): what it printed, trimmed.
    pub async fn cli<I, S>(&self, args: I) -> Result<String, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        redis_cli(
            self.probe
                .cli_args(self.port)
                .into_iter()
                .chain(args.into_iter().map(Into::into)),
        )
        .await
    }

    /// The value of `field` in `INFO <section>`, if it answers and has one.
    pub async fn info(&self, section: &str, field: &str) -> Option<String> {
        let info = self.cli(["INFO", section]).await.ok()?;
        info.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name == field).then(|| value.trim().to_owned())
        })
    }

    /// Kills it at once (SIGKILL), as a crash would; returns once the process is gone.
    pub async fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill().await;
        }
    }
}

impl Probe {
    async fn answers(&self, port: u16) -> bool {
        match self {
            Self::Plain => ping(port).await,
            Self::Cli(args) => redis_cli(args.iter().chain(&["PING".into()]))
                .await
                .is_ok_and(|reply| reply == "PONG"),
        }
    }

    /// The `redis-cli` arguments that reach the server on `port`.
    fn cli_args(&self, port: u16) -> Vec<OsString> {
        match self {
            Self::Plain => ["-h", "127.0.0.1", "-p", &port.to_string()]
                .into_iter()
                .map(Into::into)
                .collect(),
            Self::Cli(args) => args.clone(),
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
