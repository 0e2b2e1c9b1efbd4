//! The single-instance bus: a tokio broadcast channel.

use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

use super::{Delivery, Event, EventBus};

/// Broadcasts events to the subscribers of this process.
pub struct InProcessBus {
    sender: broadcast::Sender<Event>,
}

impl InProcessBus {
    /// A bus that keeps up to `capacity` events for each subscriber that falls behind.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: Event) {
        // Sending fails only when nobody is subscribed, which is not an error.
        let _ = self.sender.send(event);
    }

    fn subscribe(&self) -> BoxStream<'static, Delivery> {
        BroadcastStream::new(self.sender.subscribe())
            .map(|item| match item {
                Ok(event) => Delivery::Event(event),
                Err(BroadcastStreamRecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscriber fell behind the event bus");
                    Delivery::Missed(missed)
                }
            })
            .boxed()
    }
}
