//! A TCP proxy in front of PostgreSQL or Redis that a test can cut, slow down or black-hole,
//! to stage an outage without touching the servers other tests use; or, with no server
//! behind it, a black hole that accepts connections and never answers.
//!
//! Cut: the listening socket closes (new connections are refused) and every open connection is
//! dropped. Restore: it listens again on the same port, so the application's URL stays valid
//! and its pool reconnects by itself. Slow: every chunk is forwarded after a delay. Swallow:
//! connections are accepted and bytes read, but nothing is forwarded until [`FaultProxy::pass`]
//! (then it flows on, in order), as in a network partition.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// `host:port` of the server behind it; `None` for a black hole.
    upstream: Option<String>,
    /// Bumped by every cut: the accept loop and every connection end when it moves.
    generation: watch::Sender<u64>,
    mode: watch::Sender<Mode>,
    connections: Arc<AtomicUsize>,
    accept_loop: Mutex<Option<JoinHandle<()>>>,
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`host:port`), passing traffic.
    pub async fn in_front_of(upstream: &str) -> Self {
        Self::listen(Some(upstream.to_owned())).await
    }

    /// A listener that accepts connections, holds them open and never answers.
    pub async fn black_hole() -> Self {
        Self::listen(None).await
    }

    /// A proxy in front of the server of `database_url` (`scheme://[userinfo@]host[:port]/…`,
    /// PostgreSQL's port by default), and that URL rewritten to go through it.
    pub async fn in_front_of_database(database_url: &str) -> (Self, String) {
        let (scheme, rest) = database_url
            .split_once("://")
            .unwrap_or_else(|| panic!("not a URL (scheme://…)"));
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
        (proxy, proxied)
    }

    async fn listen(upstream: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("the proxy cannot listen: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the proxy has no address: {e}"));
        let proxy = Self {
            addr,
            upstream,
            generation: watch::channel(0).0,
            mode: watch::channel(Mode::Pass).0,
            connections: Arc::new(AtomicUsize::new(0)),
            accept_loop: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `redis://<addr>`, for a proxy in front of Redis (or a black hole standing for one).
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
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
        let connections = Arc::clone(&self.connections);
        let accept_loop = tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => continue,
                    },
                    _ = cut.changed() => return,
                };
                connections.fetch_add(1, Ordering::SeqCst);
                // A clone keeps the version its original saw: a cut that happened since
                // this connection was accepted still ends it.
                let mut cut = cut.clone();
                let (upstream, mode) = (upstream.clone(), mode.clone());
                tokio::spawn(async move {
                    let Some(upstream) = upstream else {
                        // A black hole: held open, never read, until a cut or the drop.
                        let _client = client;
                        let _ = cut.changed().await;
                        return;
                    };
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
        // Ends the accept loop and every connection, black-holed ones included.
        self.generation.send_modify(|generation| *generation += 1);
    }
}
