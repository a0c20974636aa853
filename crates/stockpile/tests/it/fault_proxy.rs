//! A TCP proxy in front of PostgreSQL or Redis that a test can cut, slow down or black-hole,
//! to stage an outage without touching the shared servers other tests use.
//!
//! Cut: the listening socket closes (new connections are refused) and every open connection is
//! dropped. Restore: it listens again on the same port, so the application's URL stays valid
//! and its pool reconnects by itself. Slow: every chunk is forwarded after a delay. Swallow:
//! connections are accepted and bytes read, but nothing is forwarded until [`FaultProxy::pass`].

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use stockpile::settings::ConnectionUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with the bytes of its open connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Delay(Duration),
    Swallow,
}

pub struct FaultProxy {
    addr: SocketAddr,
    upstream: String,
    /// Bumped by every cut: the accept loop and every connection end when it moves.
    generation: watch::Sender<u64>,
    mode: watch::Sender<Mode>,
    accept_loop: Mutex<Option<JoinHandle<()>>>,
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`host:port`).
    pub async fn in_front_of(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("the proxy cannot listen: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the proxy has no address: {e}"));
        let proxy = Self {
            addr,
            upstream: upstream.to_owned(),
            generation: watch::channel(0).0,
            mode: watch::channel(Mode::Pass).0,
            accept_loop: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forwards every chunk `delay` late from now on.
    pub fn slow(&self, delay: Duration) {
        self.mode.send_replace(Mode::Delay(delay));
    }

    /// Accepts and reads, but forwards nothing, until [`Self::pass`].
    pub fn swallow(&self) {
        self.mode.send_replace(Mode::Swallow);
    }

    /// Forwards at once again, what was swallowed included.
    pub fn pass(&self) {
        self.mode.send_replace(Mode::Pass);
    }

    /// A proxy in front of the server of `database_url` (a `postgres://` URL), and that URL
    /// rewritten to go through it.
    pub async fn in_front_of_database(database_url: &ConnectionUrl) -> (Self, ConnectionUrl) {
        let url = database_url.expose();
        let (scheme, rest) = url
            .split_once("://")
            .unwrap_or_else(|| panic!("not a URL: {}", database_url.redacted()));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (format!("{userinfo}@"), host_port),
            None => (String::new(), authority),
        };
        let upstream = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        let proxy = Self::in_front_of(&upstream).await;
        let proxied = format!("{scheme}://{userinfo}{}/{path}", proxy.addr);
        let proxied = serde_json::from_value::<ConnectionUrl>(proxied.into())
            .unwrap_or_else(|e| panic!("{e}"));
        (proxy, proxied)
    }

    /// Refuses new connections and drops the open ones; returns once the port is closed.
    pub async fn cut(&self) {
        self.generation.send_modify(|generation| *generation += 1);
        let accept_loop = self
            .accept_loop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(accept_loop) = accept_loop {
            let _ = accept_loop.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .unwrap_or_else(|e| panic!("the proxy cannot listen on {} again: {e}", self.addr));
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let mut cut = self.generation.subscribe();
        let mode = self.mode.subscribe();
        let upstream = self.upstream.clone();
        let accept_loop = tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => continue,
                    },
                    _ = cut.changed() => return,
                };
                // A clone keeps the version its original saw: a cut that happened since
                // this connection was accepted still ends it.
                let mut cut = cut.clone();
                let (upstream, mode) = (upstream.clone(), mode.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (from_client, to_client) = client.into_split();
                    let (from_server, to_server) = server.into_split();
                    tokio::select! {
                        () = pump(from_client, to_server, mode.clone()) => {}
                        () = pump(from_server, to_client, mode) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        *self
            .accept_loop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(accept_loop);
    }
}

/// Copies `from` to `to` chunk by chunk, as the proxy's mode says, until either side closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            let current = *mode.borrow_and_update();
            match current {
                Mode::Pass => break,
                Mode::Delay(delay) => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                Mode::Swallow => {
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.generation.send_modify(|generation| *generation += 1);
    }
}
