//! Executes each subscription of a socket so that it parks while it waits
//! ([`crate::bus::parking`]): an idle socket keeps its subscriptions' streams and what is
//! needed to execute them again, not their executions.
//!
//! A subscription that has given at most its first item (the current state, or nothing yet)
//! parks as soon as it waits, so that a socket (or a storm of reconnecting sockets) never
//! holds all its executions at once. One that has given more, and so is in use, parks only
//! once it has waited through two keep-alive ticks of its socket (one whole `WS_KEEPALIVE_MS`
//! at least): executing it again costs a little CPU for each item, so a conversation in
//! progress keeps its execution, and only what went quiet gives it up.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use async_graphql::{
    Data, Executor, Request, Response, Variables,
    futures_util::{
        Future, Stream,
        stream::{BoxStream, StreamExt},
    },
};

use crate::{
    bus::parking::{Resumed, Slot},
    graphql::CaregraphSchema,
};

/// Keep-alive ticks that a subscription in use must wait through before it parks.
const TICKS_BEFORE_PARKING: u64 = 2;

/// The schema, as one socket's protocol executes it.
#[derive(Clone)]
pub struct Parking {
    schema: CaregraphSchema,
    ticks: Arc<AtomicU64>,
}

impl Parking {
    /// The executor of one socket whose keep-alive counts `ticks`.
    pub fn new(schema: CaregraphSchema, ticks: Arc<AtomicU64>) -> Self {
        Self { schema, ticks }
    }
}

impl Executor for Parking {
    fn execute(&self, request: Request) -> impl Future<Output = Response> + Send {
        self.schema.execute(request)
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let session_data = session_data.unwrap_or_default();
        ParkingStream::start(self, request, session_data).boxed()
    }
}

/// One operation of a socket: executing, or parked until its stream has an item.
struct ParkingStream {
    /// The socket's executor: the schema, and the keep-alive ticks so far.
    parking: Parking,
    session_data: Arc<Data>,
    /// What the operation is executed again from; `None` when it cannot be (its text came
    /// from the persisted-query cache, which may have dropped it since), so it never parks.
    again: Option<Again>,
    slot: Arc<Slot>,
    /// The execution, while there is one.
    live: Option<BoxStream<'static, Response>>,
    /// The tick at which the execution was last seen waiting on its stream alone.
    waiting_since: Option<u64>,
    /// Items given so far, counted up to two: a second item means the subscription is in use.
    given: u8,
}

/// The parts of a request needed to execute it again. The variables are kept as JSON text:
/// a parsed map reserves room for more entries than it holds, several times the text's size.
struct Again {
    query: String,
    operation_name: Option<String>,
    variables: String,
}

impl Again {
    /// What `request` can be executed again from; nothing when its text came from the
    /// persisted-query cache (an empty `query`).
    fn of(request: &Request) -> Option<Self> {
        if request.query.is_empty() {
            return None;
        }
        Some(Self {
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables: serde_json::to_string(&request.variables).ok()?,
        })
    }
}

impl ParkingStream {
    fn start(parking: &Parking, mut request: Request, session_data: Arc<Data>) -> Self {
        let slot = Arc::new(Slot::default());
        let again = Again::of(&request);
        request.data.insert(slot.clone());
        let live = parking
            .schema
            .execute_stream_with_session_data(request, session_data.clone());
        Self {
            parking: parking.clone(),
            session_data,
            again,
            slot,
            live: Some(live),
            waiting_since: None,
            given: 0,
        }
    }

    /// Whether the execution, which found nothing, has waited long enough to park.
    fn should_park(&mut self) -> bool {
        if self.again.is_none() || !self.slot.is_idle() {
            self.waiting_since = None;
            return false;
        }
        let now = self.parking.ticks.load(Ordering::Relaxed);
        let since = *self.waiting_since.get_or_insert(now);
        let patience = if self.given > 1 {
            TICKS_BEFORE_PARKING
        } else {
            0
        };
        now >= since + patience
    }

    /// Executes the operation again, for the item its parked stream found.
    fn resume(&self, again: &Again) -> BoxStream<'static, Response> {
        // The text was written from valid variables a moment ago, so it reads back.
        let variables = serde_json::from_str(&again.variables).unwrap_or_default();
        let mut request =
            Request::new(again.query.clone()).variables(Variables::from_json(variables));
        request.operation_name.clone_from(&again.operation_name);
        request.data.insert(self.slot.clone());
        request.data.insert(Resumed);
        self.parking
            .schema
            .execute_stream_with_session_data(request, self.session_data.clone())
    }
}

impl Stream for ParkingStream {
    type Item = Response;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        let this = self.get_mut();
        loop {
            if let Some(live) = this.live.as_mut() {
                let polled = live.poll_next_unpin(cx);
                if polled.is_ready() {
                    this.waiting_since = None;
                    this.given = (this.given + 1).min(2);
                } else if this.should_park() {
                    // The stream in the slot registered this task's waker when it found
                    // nothing: it wakes the socket when it has an item.
                    this.live = None;
                    this.waiting_since = None;
                }
                return polled;
            }
            let Some(again) = &this.again else {
                return Poll::Ready(None);
            };
            match this.slot.poll_ready(cx) {
                Poll::Ready(()) => this.live = Some(this.resume(again)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
