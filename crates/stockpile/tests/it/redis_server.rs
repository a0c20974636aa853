//! A `redis-server` of the test's own on a spare port, so that a test can stop and restart it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

impl RedisServer {
    /// A running server; `None` (loudly) when `redis-server` is missing, except under `CI=true`.
    pub async fn start() -> Option<Self> {
        let mut server = Self {
            port: spare_port(),
            child: None,
        };
        if server.restart().await {
            Some(server)
        } else if std::env::var("CI").as_deref() == Ok("true") {
            panic!("redis-server is required under CI=true but could not be started");
        } else {
            eprintln!("\n*** SKIPPED: could not start redis-server (is it on the PATH?) ***\n");
            None
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts (again) on the same port; true once it accepts connections.
    pub async fn restart(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
