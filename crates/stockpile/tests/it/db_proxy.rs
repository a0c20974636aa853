//! A TCP proxy in front of PostgreSQL that a test can cut and restore, to stage a database
//! outage without stopping the shared PostgreSQL server other tests use.
//!
//! Cut: the listening socket closes (new connections are refused) and every open connection is
//! dropped. Restore: it listens again on the same port, so the application's `DATABASE_URL`
//! stays valid and the pool reconnects by itself.

use std::net::SocketAddr;
use std::sync::Mutex;

use stockpile::settings::ConnectionUrl;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct DbProxy {
    addr: SocketAddr,
    upstream: String,
    /// Bumped by every cut: the accept loop and every connection end when it moves.
    generation: watch::Sender<u64>,
    accept_loop: Mutex<Option<JoinHandle<()>>>,
}

impl DbProxy {
    /// A proxy in front of the server of `database_url` (a `postgres://` URL), and that URL
    /// rewritten to go through it.
    pub async fn start(database_url: &ConnectionUrl) -> (Self, ConnectionUrl) {
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
            accept_loop: Mutex::new(None),
        };
        proxy.serve(listener);
        let proxied = format!("{scheme}://{userinfo}{addr}/{path}");
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
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
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

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.generation.send_modify(|generation| *generation += 1);
    }
}
