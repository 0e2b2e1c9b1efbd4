//! A TCP proxy the test controls, between an instance and PostgreSQL: it can cut every
//! connection through it and refuse new ones for a while, as a network failure would, without
//! touching the database server that other tests share.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};

#[derive(Default)]
struct Links {
    refusing: bool,
    live: Vec<AbortHandle>,
    accepted: usize,
}

/// Forwards connections on `addr` to an upstream address until dropped.
pub struct TcpProxy {
    pub addr: SocketAddr,
    links: Arc<Mutex<Links>>,
    accepting: AbortHandle,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let links = Arc::new(Mutex::new(Links::default()));
        let shared = links.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut links = shared.lock().expect("proxy lock");
                if links.refusing {
                    drop(client);
                    continue;
                }
                links.accepted += 1;
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links.live.push(link.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            links,
            accepting,
        }
    }

    /// Cuts every connection through the proxy and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        let mut links = self.links.lock().expect("proxy lock");
        links.refusing = true;
        for link in links.live.drain(..) {
            link.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.links.lock().expect("proxy lock").refusing = false;
    }

    /// Connections accepted and forwarded so far.
    pub fn accepted(&self) -> usize {
        self.links.lock().expect("proxy lock").accepted
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}
