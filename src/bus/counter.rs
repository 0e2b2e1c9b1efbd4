//! Live counts: the current value first, then every change.
//!
//! A count is re-read from the database after a relevant event, because
//! transactions publish after they commit, not necessarily in commit order. An
//! event may instead state the count outright together with its position (a
//! new notification: the unread count as of its seq, taken under the feed's row
//! lock); a stated count is used unless the counter already saw a later position,
//! which is how a late event is kept from overwriting a newer count.

use async_graphql::futures_util::{
    Stream, StreamExt,
    future::BoxFuture,
    stream::{self, BoxStream},
};

use super::{Delivery, Event};
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

struct Counter<S> {
    source: S,
    deliveries: BoxStream<'static, Delivery>,
    last: Option<i64>,
    /// The latest position seen, read or stated.
    position: i64,
    done: bool,
}

/// The current count, then each different value after a relevant event (or after missed
/// events, when anything may have changed). `deliveries` must be subscribed before this call.
pub fn live_count<S: CountSource>(
    source: S,
    deliveries: BoxStream<'static, Delivery>,
) -> impl Stream<Item = Result<i64, AppError>> + Send + 'static {
    let counter = Counter {
        source,
        deliveries,
        last: None,
        position: i64::MIN,
        done: false,
    };
    stream::unfold(counter, |mut counter| async move {
        if counter.done {
            return None;
        }
        match counter.next().await {
            Ok(Some(count)) => Some((Ok(count), counter)),
            Ok(None) => None,
            Err(err) => {
                counter.done = true;
                Some((Err(err), counter))
            }
        }
    })
}

impl<S: CountSource> Counter<S> {
    async fn next(&mut self) -> Result<Option<i64>, AppError> {
        if self.last.is_none() {
            let count = self.read().await?;
            self.last = Some(count);
            return Ok(Some(count));
        }
        while let Some(delivery) = self.deliveries.next().await {
            let count = match &delivery {
                Delivery::Event(event) => match self.source.stated(event) {
                    Some(stated) if stated.position <= self.position => continue,
                    Some(stated) => {
                        self.position = stated.position;
                        stated.value
                    }
                    None if self.source.concerns(event) => self.read().await?,
                    None => continue,
                },
                Delivery::Missed(_) => self.read().await?,
            };
            if self.last != Some(count) {
                self.last = Some(count);
                return Ok(Some(count));
            }
        }
        Ok(None)
    }

    /// The stored count; everything up to its position is in it.
    async fn read(&mut self) -> Result<i64, AppError> {
        let count = self.source.current().await?;
        self.position = Ord::max(self.position, count.position);
        Ok(count.value)
    }
}
