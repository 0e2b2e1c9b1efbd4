//! The ending every subscription stream shares: an error is delivered, then the stream ends.

use std::future::Future;

use async_graphql::futures_util::{Stream, stream};

use crate::error::AppError;

/// The items `next` produces from `state`, one per call, until it has none left or fails.
/// A failure is yielded (so the client learns its code) and ends the stream: the client
/// resubscribes from what it has, rather than receiving a stream that skipped something.
pub fn until_error<T, I, F, Fut>(state: T, next: F) -> impl Stream<Item = Result<I, AppError>>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = (Result<Option<I>, AppError>, T)>,
{
    stream::unfold((Some(state), next), |(state, mut next)| async move {
        let (outcome, state) = next(state?).await;
        match outcome {
            Ok(Some(item)) => Some((Ok(item), (Some(state), next))),
            Ok(None) => None,
            Err(err) => Some((Err(err), (None, next))),
        }
    })
}
