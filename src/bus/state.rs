//! Streams of current state: what the viewer should see now, passed on as events carry it and
//! re-read from the database whenever events may have been lost.
//!
//! This is the recovery rule of every stream whose items each state where something stands
//! (a booking, a call, a member's receipt horizons, a count), as opposed to the streams of
//! stored items in [`super::feed`], which resume from a cursor. An event passes on the items
//! it carries for this viewer; when the bus reports missed events, or an event says only that
//! something changed, the stream re-reads the state as stored and passes that on instead.
//! Nothing a missed event carried can be lost that way, because every event is published
//! after its transaction committed; an item may come twice, which is harmless when each item
//! is the whole current state of its object.
//!
//! A re-read that fails ends the stream with its error: `SERVICE_UNAVAILABLE` (with
//! `retryable`) while the database is briefly unavailable, `INTERNAL` otherwise. The stream
//! does not retry by itself: it could not tell the viewer what changed meanwhile, and carrying
//! on without it is the silent gap this rule exists to prevent. The client resubscribes (after
//! a moment when the error is retryable) and queries what a new subscription does not replay.

use std::collections::VecDeque;

use async_graphql::futures_util::{Stream, StreamExt, future::BoxFuture, stream::BoxStream};
use chrono::{DateTime, Utc};

use super::{Delivery, Event, until_error::until_error};
use crate::error::AppError;

/// What one event means for a stream of state.
pub enum Change<T> {
    /// The items the event carries for this viewer, in order: none when it is not theirs.
    Items(Vec<T>),
    /// The state may have changed in a way the event does not carry: re-read it.
    Reread,
}

impl<T> Change<T> {
    /// Nothing for this viewer: the event is someone else's or about something else.
    pub fn none() -> Self {
        Change::Items(Vec::new())
    }
}

/// The state one stream follows, as far as its viewer may see it.
pub trait StateSource: Send + 'static {
    /// What the stream yields; each item is the whole current state of its object, so one
    /// passed on twice does no harm.
    type Item: Send + 'static;

    /// What `event` means for this stream. This is the per-event authorisation check: an
    /// event that is not the viewer's to know about must carry nothing.
    fn change(&mut self, event: &Event) -> Change<Self::Item>;

    /// The state as stored now, only what the viewer is a party to: what the stream passes on
    /// after missed events (each source says what that is for its stream).
    fn current(&mut self) -> BoxFuture<'_, Result<Vec<Self::Item>, AppError>>;
}

/// Where a stream of state begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// With the next change: the client reads the current state with a query.
    Changes,
    /// With the current state, then every change (a count shows its value at once).
    Current,
}

struct Follower<S: StateSource> {
    source: S,
    deliveries: BoxStream<'static, Delivery>,
    pending: VecDeque<S::Item>,
    read_first: bool,
}

/// The items of `source`, from `start` on: each event's items, and the stored state again
/// whenever events were missed. Ends with an error when a re-read fails (see the module's
/// documentation). `deliveries` must have been subscribed before this is called, so that no
/// change between the subscription and the first read is lost.
pub fn live_state<S: StateSource>(
    source: S,
    deliveries: BoxStream<'static, Delivery>,
    start: Start,
) -> impl Stream<Item = Result<S::Item, AppError>> + Send + 'static {
    let follower = Follower {
        source,
        deliveries,
        pending: VecDeque::new(),
        read_first: start == Start::Current,
    };
    until_error(follower, |mut follower| async move {
        (follower.next().await, follower)
    })
}

impl<S: StateSource> Follower<S> {
    async fn next(&mut self) -> Result<Option<S::Item>, AppError> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            if self.read_first {
                self.read_first = false;
                self.reread().await?;
                continue;
            }
            let Some(delivery) = self.deliveries.next().await else {
                return Ok(None);
            };
            match delivery {
                Delivery::Event(event) => match self.source.change(&event) {
                    Change::Items(items) => self.pending.extend(items),
                    Change::Reread => self.reread().await?,
                },
                Delivery::Missed => self.reread().await?,
            }
        }
    }

    async fn reread(&mut self) -> Result<(), AppError> {
        let current = self.source.current().await?;
        self.pending.extend(current);
        Ok(())
    }
}

/// How far before the latest change it delivered a stream of changes re-reads, to cover
/// transactions that took their timestamp earlier but committed (and published) later.
const RESYNC_MARGIN: chrono::Duration = chrono::Duration::seconds(30);

/// Where a stream of changed rows (bookings, calls) re-reads from after missed events: the
/// latest change it delivered, less [`RESYNC_MARGIN`]. Rows changed since are read again,
/// so a row may come twice but its latest state never goes missing.
#[derive(Debug, Clone, Copy)]
pub struct ChangedSince {
    latest: DateTime<Utc>,
}

impl ChangedSince {
    /// For a stream starting at `now`: before it delivers anything, a re-read covers what
    /// changed since it began.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self { latest: now }
    }

    /// Notes that a change made at `at` was delivered.
    pub fn saw(&mut self, at: DateTime<Utc>) {
        self.latest = Ord::max(self.latest, at);
    }

    /// The instant a re-read starts from.
    pub fn since(&self) -> DateTime<Utc> {
        self.latest - RESYNC_MARGIN
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;
    use async_graphql::futures_util::stream;

    /// Follows one user's "notifications changed" events; a re-read answers `stored`, or fails
    /// once `fail_after` re-reads were answered.
    struct Numbers {
        user_id: uuid::Uuid,
        stored: Vec<i64>,
        reads: Arc<AtomicUsize>,
        fail_after: usize,
    }

    impl StateSource for Numbers {
        type Item = i64;

        fn change(&mut self, event: &Event) -> Change<i64> {
            match event {
                Event::NotificationsChanged { user_id } if *user_id == self.user_id => {
                    Change::Items(vec![-1])
                }
                _ => Change::none(),
            }
        }

        fn current(&mut self) -> BoxFuture<'_, Result<Vec<i64>, AppError>> {
            Box::pin(async move {
                if self.reads.fetch_add(1, Ordering::SeqCst) >= self.fail_after {
                    return Err(AppError::Unavailable("the database is gone".to_owned()));
                }
                Ok(self.stored.clone())
            })
        }
    }

    fn numbers(user_id: uuid::Uuid, fail_after: usize) -> (Numbers, Arc<AtomicUsize>) {
        let reads = Arc::new(AtomicUsize::new(0));
        let source = Numbers {
            user_id,
            stored: vec![7, 8],
            reads: reads.clone(),
            fail_after,
        };
        (source, reads)
    }

    fn changed(user_id: uuid::Uuid) -> Delivery {
        Delivery::Event(Event::NotificationsChanged { user_id })
    }

    #[tokio::test]
    async fn events_pass_their_items_and_missed_events_pass_the_stored_state() {
        let viewer = uuid::Uuid::now_v7();
        let stranger = uuid::Uuid::now_v7();
        let (source, reads) = numbers(viewer, usize::MAX);
        let deliveries = stream::iter(vec![
            changed(stranger),
            changed(viewer),
            Delivery::Missed,
            changed(viewer),
        ])
        .boxed();
        let items: Vec<i64> = live_state(source, deliveries, Start::Changes)
            .map(|item| item.expect("no error"))
            .collect()
            .await;
        assert_eq!(items, [-1, 7, 8, -1]);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stream_that_starts_with_the_current_state_reads_it_first() {
        let viewer = uuid::Uuid::now_v7();
        let (source, _) = numbers(viewer, usize::MAX);
        let deliveries = stream::iter(vec![changed(viewer)]).boxed();
        let items: Vec<i64> = live_state(source, deliveries, Start::Current)
            .map(|item| item.expect("no error"))
            .collect()
            .await;
        assert_eq!(items, [7, 8, -1]);
    }

    #[tokio::test]
    async fn a_failed_re_read_ends_the_stream_with_its_error() {
        let viewer = uuid::Uuid::now_v7();
        let (source, _) = numbers(viewer, 0);
        let deliveries =
            stream::iter(vec![changed(viewer), Delivery::Missed, changed(viewer)]).boxed();
        let items: Vec<Result<i64, AppError>> = live_state(source, deliveries, Start::Changes)
            .collect()
            .await;
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(matches!(items[0], Ok(-1)));
        assert!(matches!(&items[1], Err(err) if err.code() == "SERVICE_UNAVAILABLE"));
    }

    #[test]
    fn a_re_read_starts_a_margin_before_the_latest_change_delivered() {
        let start = DateTime::<Utc>::from_timestamp(1_000_000, 0).expect("a valid instant");
        let mut since = ChangedSince::new(start);
        assert_eq!(since.since(), start - RESYNC_MARGIN);
        since.saw(start + chrono::Duration::seconds(90));
        since.saw(start + chrono::Duration::seconds(10));
        assert_eq!(since.since(), start + chrono::Duration::seconds(60));
    }
}
