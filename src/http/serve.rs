//! The accept loop: HTTP/1.1 with websocket upgrades, a deadline on each request's
//! headers so that a client trickling them in cannot hold a connection, the peer's
//! address for the handlers, and a graceful stop: no new connections, websockets told to
//! reconnect elsewhere, requests in flight given a grace period to finish.

use std::time::Duration;

use axum::{Router, extract::ConnectInfo, http::Request};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tower::ServiceExt;

use super::OpenSockets;
use crate::shutdown::Shutdown;
/// The pause after a failed accept (out of file descriptors, say) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How the accept loop stops: what asks for it, what it tells, and how long it waits.
pub struct Stop<F> {
    /// Completes when the stop is asked for (a signal, or a test).
    pub requested: F,
    /// Set once the listener is closed, so that websockets close with 1001 only when
    /// reconnecting cannot reach this instance again.
    pub shutdown: Shutdown,
    /// The open websockets, whose closing the stop waits for.
    pub sockets: std::sync::Arc<OpenSockets>,
    /// How long requests in flight and closing websockets may take.
    pub grace: Duration,
}

/// Serves `router` on `listener` until the stop is requested; then closes the listener,
/// begins the shutdown, and lets requests in flight finish and websockets close for up to
/// the grace period.
pub async fn serve<F: Future<Output = ()>>(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    stop: Stop<F>,
) {
    let Stop {
        requested: stop,
        shutdown,
        sockets,
        grace,
    } = stop;
    let (stopping, stop_requested) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut stop => break,
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let mut stop_requested = stop_requested.clone();
        connections.spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                _ = stop_requested.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = served {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("stopping: no new connections; draining requests and websockets");
    shutdown.begin();
    let _ = stopping.send(true);
    let drained = async {
        while connections.join_next().await.is_some() {}
        sockets.all_closed().await;
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!("stopping with requests or websockets still open after {grace:?}");
    }
}
