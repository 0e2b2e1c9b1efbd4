//! Live counts: the current value first, then every change; a stream of state
//! ([`super::state`]) whose state is one number.
//!
//! A count is re-read from the database after a relevant event, because
//! transactions publish after they commit, not necessarily in commit order, and
//! after missed events, when anything may have changed: a resync yields the
//! current count. An event may instead state the count outright together with
//! its position (a new notification: the unread count as of its seq, taken under
//! the feed's row lock); a stated count is used unless the counter already saw a
//! later position, which is how a late event is kept from overwriting a newer count.

use async_graphql::futures_util::{
    Stream, StreamExt, future, future::BoxFuture, stream::BoxStream,
};

use super::{
    Delivery, Event,
    state::{Change, Start, StateSource, live_state},
};
use crate::error::AppError;

/// A count and the position it is as of; a higher position is a later count.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    pub value: i64,
    pub position: i64,
}

/// A count that some events may change.
pub trait CountSource: Send + Sync + 'static {
    /// Whether `event` may change this count (and is the viewer's to know about).
    fn concerns(&self, event: &Event) -> bool;
    /// The count `event` states outright, if it does.
    fn stated(&self, _event: &Event) -> Option<Count> {
        None
    }
    /// The count as stored now.
    fn current(&self) -> BoxFuture<'_, Result<Count, AppError>>;
}

/// A count as a state: each value read or stated, never one older than a value already had.
struct Counting<S> {
    source: S,
    /// The latest position seen, read or stated.
    position: i64,
}

impl<S: CountSource> StateSource for Counting<S> {
    type Item = i64;

    fn change(&mut self, event: &Event) -> Change<i64> {
        match self.source.stated(event) {
            Some(stated) if stated.position <= self.position => Change::none(),
            Some(stated) => {
                self.position = stated.position;
                Change::Items(vec![stated.value])
            }
            None if self.source.concerns(event) => Change::Reread,
            None => Change::none(),
        }
    }

    /// The stored count; everything up to its position is in it.
    fn current(&mut self) -> BoxFuture<'_, Result<Vec<i64>, AppError>> {
        Box::pin(async move {
            let count = self.source.current().await?;
            self.position = Ord::max(self.position, count.position);
            Ok(vec![count.value])
        })
    }
}

/// The current count, then each different value after a relevant event (or after missed
/// events, when anything may have changed). `deliveries` must be subscribed before this call.
/// A failed read ends the stream with its error, as every stream of state does.
pub fn live_count<S: CountSource>(
    source: S,
    deliveries: BoxStream<'static, Delivery>,
) -> impl Stream<Item = Result<i64, AppError>> + Send + 'static {
    let counting = Counting {
        source,
        position: i64::MIN,
    };
    let mut last = None;
    live_state(counting, deliveries, Start::Current).filter(move |count| {
        future::ready(match count {
            Ok(value) => last.replace(*value) != Some(*value),
            Err(_) => true,
        })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_graphql::futures_util::stream;

    use super::*;
    use crate::sync::lock;

    /// One user's count, whose stored values are read in turn.
    struct Stored {
        user_id: uuid::Uuid,
        values: Mutex<Vec<i64>>,
    }

    impl CountSource for Stored {
        fn concerns(&self, event: &Event) -> bool {
            matches!(event, Event::NotificationsChanged { user_id } if *user_id == self.user_id)
        }

        fn current(&self) -> BoxFuture<'_, Result<Count, AppError>> {
            let value = lock(&self.values).remove(0);
            Box::pin(async move { Ok(Count { value, position: 0 }) })
        }
    }

    #[tokio::test]
    async fn the_current_count_then_each_different_value_read_after_an_event_or_missed_events() {
        let viewer = uuid::Uuid::now_v7();
        let source = Stored {
            user_id: viewer,
            values: Mutex::new(vec![2, 2, 3, 1]),
        };
        let changed = |user_id| Delivery::Event(Event::NotificationsChanged { user_id });
        let deliveries = stream::iter(vec![
            changed(viewer),
            changed(uuid::Uuid::now_v7()),
            Delivery::Missed,
            changed(viewer),
        ])
        .boxed();
        let counts: Vec<i64> = live_count(source, deliveries)
            .map(|count| count.expect("no error"))
            .collect()
            .await;
        assert_eq!(counts, [2, 3, 1]);
    }
}
