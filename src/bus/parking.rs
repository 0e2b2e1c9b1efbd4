//! Subscriptions that hold next to nothing while idle.
//!
//! async-graphql keeps kilobytes for each live subscription: its execution, the parsed
//! operation, the resolver's future and context. A socket's subscriptions wait almost all the
//! time, so a socket parks each one that waits: it ends the execution and keeps only the
//! resolver's stream, in the subscription's [`Slot`]. When that stream has an item, the
//! subscription is executed again, and its resolver, finding its stream in the slot
//! ([`resume_or`]), hands it back instead of starting over. The stream was authorised when it
//! was made, for this subscription of this viewer alone, and it carries its own position (a
//! cursor, a count, a typing state), so the client sees one uninterrupted subscription.

use std::{
    any::Any,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context as TaskContext, Poll},
};

use async_graphql::{
    Context,
    futures_util::{
        Stream,
        stream::{BoxStream, StreamExt},
    },
};

use crate::{error::AppError, sync::lock, telemetry::LiveSubscription};

/// Marks an execution that resumes a parked subscription: it was counted, charged and
/// authorised when the subscription started, and is not again.
pub struct Resumed;

/// Where one subscription's stream waits between executions.
#[derive(Default)]
pub struct Slot(Mutex<SlotState>);

#[derive(Default)]
struct SlotState {
    held: Option<Box<dyn Held>>,
    /// The last poll of the held stream found nothing: the execution has nothing in flight.
    waiting: bool,
    /// The operation is not one root field (several fields, a fragment), or more than one
    /// stream was made in one execution: never parked, since one slot cannot tell streams
    /// apart, and one field's resolver may still be running while another's stream waits.
    shared: bool,
    /// Counts the subscription while it lives, parked or not.
    live: Option<LiveSubscription>,
}

impl Slot {
    /// Whether the subscription's execution may end now: its stream is here, and the last
    /// poll found nothing, so no item is in flight.
    pub fn is_idle(&self) -> bool {
        let state = lock(&self.0);
        state.held.is_some() && state.waiting && !state.shared
    }

    /// Polls the held stream of a parked subscription: ready once it has an item (kept for
    /// the next execution's resolver) or has ended, when the subscription must be executed
    /// again to deliver it.
    pub fn poll_ready(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        match lock(&self.0).held.as_mut() {
            Some(held) => held.poll_ready(cx),
            None => Poll::Ready(()),
        }
    }

    /// Keeps the operation executing for its whole life: it is not one root field.
    pub fn never_park(&self) {
        lock(&self.0).shared = true;
    }

    /// Keeps the subscription counted until the slot goes, however many executions it takes.
    pub fn keep_counted(&self, live: LiveSubscription) {
        lock(&self.0).live.get_or_insert(live);
    }
}

/// A stream in a slot, whatever its items.
trait Held: Send {
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<()>;
    fn as_any(&mut self) -> &mut dyn Any;
}

/// A resolver's stream and the item it produced while parked, or the end it reached.
struct Holding<T> {
    stream: BoxStream<'static, T>,
    next: Next<T>,
}

enum Next<T> {
    Unknown,
    Item(T),
    Ended,
}

impl<T: Send + 'static> Holding<T> {
    /// The next item, from what was found while parked or from the stream.
    fn poll_next(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<T>> {
        match std::mem::replace(&mut self.next, Next::Unknown) {
            Next::Item(item) => Poll::Ready(Some(item)),
            Next::Ended => {
                self.next = Next::Ended;
                Poll::Ready(None)
            }
            Next::Unknown => {
                let polled = self.stream.poll_next_unpin(cx);
                if let Poll::Ready(None) = polled {
                    self.next = Next::Ended;
                }
                polled
            }
        }
    }
}

impl<T: Send + 'static> Held for Holding<T> {
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        match self.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                self.next = Next::Item(item);
                Poll::Ready(())
            }
            Poll::Ready(None) => Poll::Ready(()),
            Poll::Pending => Poll::Pending,
        }
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// The subscription's stream: the one its slot holds when the subscription resumes after
/// parking, else the one `start` makes (checking the viewer's right to it), kept in the slot
/// for later. Without a slot (a subscription not on a socket), simply the one `start` makes.
pub async fn resume_or<T, S, F, Fut>(
    ctx: &Context<'_>,
    start: F,
) -> Result<BoxStream<'static, T>, AppError>
where
    T: Send + 'static,
    S: Stream<Item = T> + Send + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<S, AppError>>,
{
    let Some(slot) = ctx.data_opt::<Arc<Slot>>() else {
        return Ok(start().await?.boxed());
    };
    if ctx.data_opt::<Resumed>().is_some() && lock(&slot.0).held.is_some() {
        return Ok(SlotStream::<T>::new(slot.clone()).boxed());
    }
    let stream = start().await?.boxed();
    let mut state = lock(&slot.0);
    if state.held.is_some() {
        state.shared = true;
        return Ok(stream);
    }
    state.held = Some(Box::new(Holding {
        stream,
        next: Next::Unknown,
    }));
    Ok(SlotStream::<T>::new(slot.clone()).boxed())
}

/// An execution's view of the stream its slot holds.
struct SlotStream<T> {
    slot: Arc<Slot>,
    item: PhantomData<fn() -> T>,
}

impl<T> SlotStream<T> {
    fn new(slot: Arc<Slot>) -> Self {
        Self {
            slot,
            item: PhantomData,
        }
    }
}

impl<T: Send + 'static> Stream for SlotStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<T>> {
        let mut state = lock(&self.slot.0);
        let Some(holding) = state
            .held
            .as_mut()
            .and_then(|held| held.as_any().downcast_mut::<Holding<T>>())
        else {
            tracing::error!("a resumed subscription found another field's stream in its slot");
            return Poll::Ready(None);
        };
        let polled = holding.poll_next(cx);
        state.waiting = polled.is_pending();
        polled
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::futures_util::stream;

    use super::*;

    #[test]
    fn a_held_stream_keeps_the_item_found_while_parked_and_its_end() {
        let mut holding = Holding {
            stream: stream::iter([1, 2]).boxed(),
            next: Next::Unknown,
        };
        let waker = async_graphql::futures_util::task::noop_waker();
        let mut cx = TaskContext::from_waker(&waker);
        assert!(Held::poll_ready(&mut holding, &mut cx).is_ready());
        assert!(Held::poll_ready(&mut holding, &mut cx).is_ready());
        assert_eq!(holding.poll_next(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(holding.poll_next(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(holding.poll_next(&mut cx), Poll::Ready(None));
        // An ended stream is not polled again: it answers its end.
        assert!(Held::poll_ready(&mut holding, &mut cx).is_ready());
        assert_eq!(holding.poll_next(&mut cx), Poll::Ready(None));
    }
}
