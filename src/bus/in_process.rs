//! The single-instance bus: one small tokio broadcast channel per live topic.
//!
//! Channels carry `Arc<Event>`, so each slot of each topic's ring is a pointer: with tens of
//! thousands of live topics, the rings are a large part of a connection's memory.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

use super::{Delivery, Event, EventBus, Topic};
use crate::sync::lock;

/// Broadcasts events to the subscribers of this process, per topic.
pub struct InProcessBus {
    topics: Mutex<HashMap<Topic, broadcast::Sender<Arc<Event>>>>,
    capacity: usize,
}

impl InProcessBus {
    /// A bus whose subscribers may each fall `capacity` events behind on a topic before they
    /// are told they missed some (and catch up from the database).
    pub fn new(capacity: usize) -> Self {
        Self {
            topics: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<Topic, broadcast::Sender<Arc<Event>>>> {
        lock(&self.topics)
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: Event) {
        let event = Arc::new(event);
        let mut topics = self.topics();
        for topic in event.topics() {
            let Some(sender) = topics.get(&topic) else {
                continue;
            };
            // Sending fails only when the topic's last subscriber is gone: forget the topic.
            if sender.send(Arc::clone(&event)).is_err() {
                topics.remove(&topic);
            }
        }
    }

    fn subscribe(&self, topic: Topic) -> BoxStream<'static, Delivery> {
        let receiver = {
            let mut topics = self.topics();
            if topics.len() > 1024 && topics.len().is_power_of_two() {
                topics.retain(|_, sender| sender.receiver_count() > 0);
            }
            topics
                .entry(topic)
                .or_insert_with(|| broadcast::channel(self.capacity).0)
                .subscribe()
        };
        BroadcastStream::new(receiver)
            .map(|item| match item {
                Ok(event) => Delivery::Event(Event::clone(&event)),
                Err(BroadcastStreamRecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscriber fell behind the event bus");
                    Delivery::Missed(missed)
                }
            })
            .boxed()
    }
}
