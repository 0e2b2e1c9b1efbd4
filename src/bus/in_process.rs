//! The single-instance bus: one small tokio broadcast channel per live topic.
//!
//! Channels carry `Arc`s, so each slot of each topic's ring is a pointer: with tens of
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

/// What a topic's channel carries: an event, or word that events may have been missed.
#[derive(Clone)]
enum Signal {
    Event(Arc<Event>),
    Missed,
}

/// Broadcasts events to the subscribers of this process, per topic.
pub struct InProcessBus {
    topics: Mutex<HashMap<Topic, broadcast::Sender<Signal>>>,
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

    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<Topic, broadcast::Sender<Signal>>> {
        lock(&self.topics)
    }

    /// Tells the subscribers of `topics` that they may have missed events (one too large to
    /// travel between instances), so they resynchronise from the database.
    pub fn missed(&self, topics: &[Topic]) {
        let mut live = self.topics();
        for topic in topics {
            if let Some(sender) = live.get(topic)
                && sender.send(Signal::Missed).is_err()
            {
                live.remove(topic);
            }
        }
    }

    /// Tells every subscriber that it may have missed events (the connection to the other
    /// instances was lost for a while), so each resynchronises from the database.
    pub fn missed_everything(&self) {
        self.topics()
            .retain(|_, sender| sender.send(Signal::Missed).is_ok());
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
            if sender.send(Signal::Event(Arc::clone(&event))).is_err() {
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
                Ok(Signal::Event(event)) => Delivery::Event(Event::clone(&event)),
                Ok(Signal::Missed) => Delivery::Missed,
                Err(BroadcastStreamRecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscriber fell behind the event bus");
                    Delivery::Missed
                }
            })
            .boxed()
    }
}
