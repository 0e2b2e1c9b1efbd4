//! The single-instance bus: for each live topic, the mailboxes of its subscribers.
//!
//! Most connections are idle most of the time, and there is one topic or more per connection,
//! so an idle subscriber must cost next to nothing: its mailbox is empty and holds no buffer
//! until an event arrives, and a topic nobody watches has no entry at all. Events are `Arc`s,
//! so a mailbox holding one holds a pointer.

use std::{
    collections::{HashMap, VecDeque},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
};

use async_graphql::futures_util::{
    Stream,
    stream::{BoxStream, StreamExt},
};

use super::{Delivery, Event, EventBus, Topic};
use crate::sync::lock;

/// What a mailbox holds: an event, or word that events may have been missed.
#[derive(Clone)]
enum Signal {
    Event(Arc<Event>),
    Missed,
}

/// Broadcasts events to the subscribers of this process, per topic.
pub struct InProcessBus {
    registry: Arc<Registry>,
}

/// The live topics and their subscribers' mailboxes.
struct Registry {
    topics: Mutex<HashMap<Topic, Vec<Arc<Mailbox>>>>,
    /// How many signals a mailbox holds before it is emptied and told it missed events.
    capacity: usize,
}

/// One subscriber's undelivered signals, and who to wake when one arrives.
#[derive(Default)]
struct Mailbox(Mutex<Queue>);

#[derive(Default)]
struct Queue {
    signals: VecDeque<Signal>,
    waker: Option<Waker>,
}

impl Mailbox {
    /// Adds `signal`, or, when the subscriber is `capacity` behind, drops what it has not
    /// taken and leaves it one `Missed`: it resynchronises from the database instead.
    fn put(&self, signal: Signal, capacity: usize) {
        let waker = {
            let mut queue = lock(&self.0);
            if queue.signals.len() >= capacity {
                tracing::warn!(
                    missed = queue.signals.len(),
                    "a subscriber fell behind the event bus"
                );
                queue.signals.clear();
                queue.signals.push_back(Signal::Missed);
            } else if !matches!(
                (&signal, queue.signals.back()),
                (Signal::Missed, Some(Signal::Missed))
            ) {
                queue.signals.push_back(signal);
            }
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Registry {
    /// Puts `signal` in the mailbox of every subscriber of `topic`.
    fn deliver(
        topics: &HashMap<Topic, Vec<Arc<Mailbox>>>,
        topic: &Topic,
        signal: &Signal,
        capacity: usize,
    ) {
        for mailbox in topics.get(topic).into_iter().flatten() {
            mailbox.put(signal.clone(), capacity);
        }
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<Topic, Vec<Arc<Mailbox>>>> {
        lock(&self.topics)
    }
}

impl InProcessBus {
    /// A bus whose subscribers may each fall `capacity` events behind before they are told
    /// they missed some (and catch up from the database).
    pub fn new(capacity: usize) -> Self {
        Self {
            registry: Arc::new(Registry {
                topics: Mutex::new(HashMap::new()),
                capacity: capacity.max(1),
            }),
        }
    }

    /// Tells the subscribers of `topics` that they may have missed events (one too large to
    /// travel between instances), so they resynchronise from the database.
    pub fn missed(&self, topics: &[Topic]) {
        let live = self.registry.topics();
        for topic in topics {
            Registry::deliver(&live, topic, &Signal::Missed, self.registry.capacity);
        }
    }

    /// Tells every subscriber that it may have missed events (the connection to the other
    /// instances was lost for a while), so each resynchronises from the database.
    pub fn missed_everything(&self) {
        let live = self.registry.topics();
        for mailbox in live.values().flatten() {
            mailbox.put(Signal::Missed, self.registry.capacity);
        }
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: Event) {
        let topics = event.topics();
        let signal = Signal::Event(Arc::new(event));
        let live = self.registry.topics();
        for topic in topics {
            Registry::deliver(&live, &topic, &signal, self.registry.capacity);
        }
    }

    fn subscribe(&self, topic: Topic) -> BoxStream<'static, Delivery> {
        let mailbox = Arc::new(Mailbox::default());
        self.registry
            .topics()
            .entry(topic)
            .or_default()
            .push(mailbox.clone());
        Subscription {
            registry: self.registry.clone(),
            topic,
            mailbox,
        }
        .boxed()
    }
}

/// One subscriber's stream; dropping it takes its mailbox off the topic, and the topic off
/// the bus when it was the last.
struct Subscription {
    registry: Arc<Registry>,
    topic: Topic,
    mailbox: Arc<Mailbox>,
}

impl Stream for Subscription {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let mut queue = lock(&self.mailbox.0);
        match queue.signals.pop_front() {
            Some(Signal::Event(event)) => Poll::Ready(Some(Delivery::Event(Event::clone(&event)))),
            Some(Signal::Missed) => Poll::Ready(Some(Delivery::Missed)),
            None => {
                // An emptied queue gives its buffer back: an idle subscriber holds none.
                queue.signals = VecDeque::new();
                match &mut queue.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    waker => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut topics = self.registry.topics();
        if let Some(mailboxes) = topics.get_mut(&self.topic) {
            mailboxes.retain(|mailbox| !Arc::ptr_eq(mailbox, &self.mailbox));
            if mailboxes.is_empty() {
                topics.remove(&self.topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::futures_util::FutureExt;

    use super::*;

    fn changed(user_id: uuid::Uuid) -> Event {
        Event::NotificationsChanged { user_id }
    }

    fn next_now(stream: &mut BoxStream<'static, Delivery>) -> Option<Delivery> {
        stream.next().now_or_never().flatten()
    }

    #[test]
    fn a_subscriber_receives_its_topics_events_in_order_and_no_others() {
        let bus = InProcessBus::new(8);
        let (mine, theirs) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let mut stream = bus.subscribe(Topic::User(mine));
        bus.publish(changed(theirs));
        bus.publish(changed(mine));
        bus.publish(changed(mine));
        for _ in 0..2 {
            assert!(matches!(
                next_now(&mut stream),
                Some(Delivery::Event(Event::NotificationsChanged { user_id })) if user_id == mine
            ));
        }
        assert!(next_now(&mut stream).is_none());
    }

    #[test]
    fn a_subscriber_past_capacity_is_told_it_missed_events_then_receives_the_next() {
        let bus = InProcessBus::new(2);
        let user = uuid::Uuid::now_v7();
        let mut stream = bus.subscribe(Topic::User(user));
        for _ in 0..3 {
            bus.publish(changed(user));
        }
        bus.publish(changed(user));
        assert!(matches!(next_now(&mut stream), Some(Delivery::Missed)));
        assert!(matches!(next_now(&mut stream), Some(Delivery::Event(_))));
        assert!(next_now(&mut stream).is_none());
    }

    #[test]
    fn a_topic_is_forgotten_with_its_last_subscriber() {
        let bus = InProcessBus::new(2);
        let user = uuid::Uuid::now_v7();
        let first = bus.subscribe(Topic::User(user));
        let second = bus.subscribe(Topic::User(user));
        drop(first);
        assert_eq!(bus.registry.topics()[&Topic::User(user)].len(), 1);
        drop(second);
        assert!(bus.registry.topics().is_empty());
    }
}
