//! Live counts: the current value first, then every change.
//!
//! The count is re-read from the database after each relevant event rather
//! than carried in the event, because concurrent transactions make any count
//! computed inside one of them stale by the time it is published.

use async_graphql::futures_util::{
    Stream, StreamExt,
    future::BoxFuture,
    stream::{self, BoxStream},
};

use super::{Delivery, Event};
use crate::error::AppError;

/// A count that some events may change.
pub trait CountSource: Send + Sync + 'static {
    /// Whether `event` may change this count (and is the viewer's to know about).
    fn concerns(&self, event: &Event) -> bool;
    /// The count as stored now.
    fn current(&self) -> BoxFuture<'_, Result<i64, AppError>>;
}

struct Counter<S> {
    source: S,
    deliveries: BoxStream<'static, Delivery>,
    last: Option<i64>,
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
            let count = self.source.current().await?;
            self.last = Some(count);
            return Ok(Some(count));
        }
        while let Some(delivery) = self.deliveries.next().await {
            let relevant = match &delivery {
                Delivery::Event(event) => self.source.concerns(event),
                Delivery::Missed(_) => true,
            };
            if !relevant {
                continue;
            }
            let count = self.source.current().await?;
            if self.last != Some(count) {
                self.last = Some(count);
                return Ok(Some(count));
            }
        }
        Ok(None)
    }
}
