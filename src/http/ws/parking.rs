//! Executes each subscription of a socket so that it parks while it waits
//! ([`crate::bus::parking`]): an idle socket keeps its subscriptions' streams and what is
//! needed to execute them again, not their executions.

use std::{
    pin::Pin,
    sync::Arc,
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

/// The schema, as the socket's protocol executes it.
#[derive(Clone)]
pub struct Parking(pub CaregraphSchema);

impl Executor for Parking {
    fn execute(&self, request: Request) -> impl Future<Output = Response> + Send {
        self.0.execute(request)
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        ParkingStream::start(self.0.clone(), request, session_data.unwrap_or_default()).boxed()
    }
}

/// One operation of a socket: executing, or parked until its stream has an item.
struct ParkingStream {
    schema: CaregraphSchema,
    session_data: Arc<Data>,
    /// What the operation is executed again from; `None` when it cannot be (its text came
    /// from the persisted-query cache, which may have dropped it since), so it never parks.
    again: Option<Again>,
    slot: Arc<Slot>,
    /// The execution, while there is one.
    live: Option<BoxStream<'static, Response>>,
}

/// The parts of a request needed to execute it again. The variables are kept as JSON text:
/// a parsed map reserves room for more entries than it holds, several times the text's size.
struct Again {
    query: String,
    operation_name: Option<String>,
    variables: String,
}

impl ParkingStream {
    fn start(schema: CaregraphSchema, mut request: Request, session_data: Arc<Data>) -> Self {
        let slot = Arc::new(Slot::default());
        let again = (!request.query.is_empty())
            .then(|| {
                Some(Again {
                    query: request.query.clone(),
                    operation_name: request.operation_name.clone(),
                    variables: serde_json::to_string(&request.variables).ok()?,
                })
            })
            .flatten();
        request.data.insert(slot.clone());
        let live = schema.execute_stream_with_session_data(request, session_data.clone());
        Self {
            schema,
            session_data,
            again,
            slot,
            live: Some(live),
        }
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
        self.schema
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
                if polled.is_pending() && this.again.is_some() && this.slot.is_idle() {
                    // The stream in the slot registered this task's waker when it found
                    // nothing: it wakes the socket when it has an item.
                    this.live = None;
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
