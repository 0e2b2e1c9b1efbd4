//! Resumable streams over a per-stream sequence: gap-free, duplicate-free, in order.
//!
//! The recipe (`docs/architecture.md`, "The event path"): subscribe to the bus first, then
//! replay from the database, then drop live events already replayed. Because a stream's `seq`
//! is assigned under a row lock held until commit, every seq below a committed
//! one is committed too; so when a live event skips ahead (two commits
//! published in the other order) or the bus reports missed events, the gap is
//! read back from the database instead of being lost.

use std::collections::VecDeque;

use async_graphql::futures_util::{Stream, StreamExt, future::BoxFuture, stream::BoxStream};

use super::{Delivery, Event, until_error::until_error};
use crate::error::AppError;

/// How many stored items one replay query reads.
const REPLAY_BATCH: u64 = 200;

/// One sequenced stream (a user's notifications, a chat session's messages).
pub trait SequencedSource: Send + Sync + 'static {
    type Item: Send + 'static;

    /// The item's position in its stream.
    fn seq(item: &Self::Item) -> i64;

    /// The item `event` carries for this stream, if any. This is the per-event
    /// authorisation check: events of other streams never pass it.
    fn item_in(&self, event: &Event) -> Option<Self::Item>;

    /// Stored items after `after`, oldest first, at most `limit`.
    fn stored_after(
        &self,
        after: i64,
        limit: u64,
    ) -> BoxFuture<'_, Result<Vec<Self::Item>, AppError>>;

    /// The seq of the newest stored item, 0 when there is none.
    fn head(&self) -> BoxFuture<'_, Result<i64, AppError>>;
}

struct Cursor<S: SequencedSource> {
    source: S,
    deliveries: BoxStream<'static, Delivery>,
    /// The last seq handed out; None until the first poll reads where to start.
    last: Option<i64>,
    start_after: Option<i64>,
    pending: VecDeque<S::Item>,
    /// The last replay filled a whole batch, so more may be stored.
    more_stored: bool,
}

/// Items after `after` (or, without it, from now on), then everything live.
/// `deliveries` must have been subscribed before this is called.
pub fn resumable<S: SequencedSource>(
    source: S,
    deliveries: BoxStream<'static, Delivery>,
    after: Option<i64>,
) -> impl Stream<Item = Result<S::Item, AppError>> + Send + 'static {
    let cursor = Cursor {
        source,
        deliveries,
        last: None,
        start_after: after,
        pending: VecDeque::new(),
        more_stored: false,
    };
    until_error(
        cursor,
        |mut cursor| async move { (cursor.next().await, cursor) },
    )
}

impl<S: SequencedSource> Cursor<S> {
    async fn next(&mut self) -> Result<Option<S::Item>, AppError> {
        let last = match self.last {
            Some(last) => last,
            None => match self.start_after {
                Some(after) => {
                    self.more_stored = true;
                    after
                }
                None => self.source.head().await?,
            },
        };
        self.last = Some(last);
        loop {
            while let Some(item) = self.pending.pop_front() {
                let seq = S::seq(&item);
                if seq > last {
                    self.last = Some(seq);
                    return Ok(Some(item));
                }
            }
            if self.more_stored {
                self.replay(last).await?;
                continue;
            }
            match self.deliveries.next().await {
                None => return Ok(None),
                Some(Delivery::Event(event)) => {
                    let Some(item) = self.source.item_in(&event) else {
                        continue;
                    };
                    let seq = S::seq(&item);
                    if seq == last + 1 {
                        self.last = Some(seq);
                        return Ok(Some(item));
                    }
                    if seq > last {
                        // Something before it committed but was published later: read it back.
                        self.replay(last).await?;
                    }
                }
                Some(Delivery::Missed) => self.replay(last).await?,
            }
        }
    }

    async fn replay(&mut self, after: i64) -> Result<(), AppError> {
        let stored = self.source.stored_after(after, REPLAY_BATCH).await?;
        self.more_stored = stored.len() as u64 == REPLAY_BATCH;
        self.pending.extend(stored);
        Ok(())
    }
}
