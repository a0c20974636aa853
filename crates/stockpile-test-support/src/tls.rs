//! A `redis-server` that speaks TLS only (`--tls-port`, `--port 0`), with a certificate
//! authority and a server certificate the test makes with the `openssl` command.

use std::path::{Path, PathBuf};

use crate::redis_server::{Probe, RedisServer};
use crate::{skip_or_fail, spare_port, TempDir};

/// A certificate authority and a server certificate it signed, for `localhost` and
/// `127.0.0.1`, in a temporary directory of their own. The certificate is good for clients too:
/// cluster nodes, replicas and Sentinels present it when they connect to one another.
#[derive(Debug)]
pub struct Certificates {
    dir: TempDir,
}

impl Certificates {
    /// Makes a new authority and server certificate; `Err` says what `openssl` answered.
    pub async fn generate() -> Result<Self, String> {
        let certificates = Self {
            dir: TempDir::new("tls"),
        };
        let dir = certificates.dir.path();
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .map_err(|e| format!("cannot write server.ext: {e}"))?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            dir,
            [
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=Stockpile test CA",
            ],
            &ec,
            [
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )
        .await?;
        openssl(
            dir,
            ["req", "-new", "-subj", "/CN=localhost"],
            &ec,
            ["-keyout", "server.key", "-out", "server.csr"],
        )
        .await?;
        openssl(
            dir,
            ["x509", "-req", "-days", "2", "-in", "server.csr"],
            &[],
            [
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        )
        .await?;
        Ok(certificates)
    }

    /// The authority's certificate, for clients (`REDIS_TLS_CA_FILE`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// `redis-server` arguments that serve TLS only, on `port`, with these certificates;
    /// clients need no certificate of their own.
    pub fn server_args(&self, port: u16) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        for arg in ["--port", "0", "--tls-port", &port.to_string()] {
            args.push(arg.into());
        }
        for (flag, file) in [
            ("--tls-cert-file", self.cert_file()),
            ("--tls-key-file", self.key_file()),
            ("--tls-ca-cert-file", self.ca_file()),
        ] {
            args.push(flag.into());
            args.push(file.into());
        }
        args.push("--tls-auth-clients".into());
        args.push("no".into());
        args
    }

    /// `redis-cli` arguments that reach a TLS server on `port` trusting this authority.
    pub fn cli_args(&self, port: u16) -> Vec<std::ffi::OsString> {
        let mut args = self.cli_tls_args();
        for arg in ["-h", "127.0.0.1", "-p", &port.to_string()] {
            args.push(arg.into());
        }
        args
    }
}

impl Certificates {
    /// `redis-cli` arguments that speak TLS trusting this authority, before `-h`/`-p` or
    /// `--cluster …`.
    pub fn cli_tls_args(&self) -> Vec<std::ffi::OsString> {
        vec!["--tls".into(), "--cacert".into(), self.ca_file().into()]
    }
}

/// Runs `openssl <command> <key> <rest>` in `dir`.
async fn openssl<const C: usize, const R: usize>(
    dir: &Path,
    command: [&str; C],
    key: &[&str],
    rest: [&str; R],
) -> Result<(), String> {
    let output = tokio::process::Command::new("openssl")
        .args(command)
        .args(key)
        .args(rest)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("openssl: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {}: {}",
            command.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A `redis-server` on a spare port that accepts TLS only, with certificates of its own.
pub struct TlsRedisServer {
    server: RedisServer,
    certificates: Certificates,
}

impl TlsRedisServer {
    /// A running server, or `None` after [`skip_or_fail`] when `openssl` or a TLS-capable
    /// `redis-server` is missing.
    pub async fn start() -> Option<Self> {
        let certificates = match Certificates::generate().await {
            Ok(certificates) => certificates,
            Err(why) => {
                skip_or_fail(&format!("cannot make test certificates: {why}"));
                return None;
            }
        };
        let port = spare_port();
        let probe = Probe::Cli(certificates.cli_args(port));
        let server =
            RedisServer::configured(port, None, certificates.server_args(port), probe).await?;
        Some(Self {
            server,
            certificates,
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `rediss://127.0.0.1:<port>`; the client must trust [`Self::ca_file`].
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.server.port())
    }

    pub fn ca_file(&self) -> PathBuf {
        self.certificates.ca_file()
    }

    pub fn certificates(&self) -> &Certificates {
        &self.certificates
    }

    /// The server itself, to kill and restart.
    pub fn server(&mut self) -> &mut RedisServer {
        &mut self.server
    }
}
