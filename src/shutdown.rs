//! The process-wide "stopping" signal: set once when a stop is asked for, watched by every
//! part that must react (the accept loop, each websocket, the scheduler, `/ready`).

use std::sync::Arc;

use tokio::sync::watch;

/// A signal that goes from running to stopping once and never back; clones share it.
#[derive(Clone)]
pub struct Shutdown {
    stopping: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            stopping: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl Shutdown {
    /// Tells every watcher that the process is stopping; later calls change nothing.
    pub fn begin(&self) {
        self.stopping.send_replace(true);
    }

    /// Whether a stop was asked for, for checks that must not wait (`/ready`).
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Completes once a stop was asked for, at once if it already was.
    pub async fn stopping(&self) {
        let mut watcher = self.stopping.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail while this runs.
        let _ = watcher.wait_for(|stopping| *stopping).await;
    }
}
