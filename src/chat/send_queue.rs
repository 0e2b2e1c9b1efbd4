//! Group commit for `sendMessage`. Sends that arrive while a batch is being written wait for
//! the next one, so a transaction's round trips are paid once per batch, not once per
//! message: under load the batch grows and throughput with it; alone, a send goes at once.

use tokio::sync::{mpsc, oneshot};

use super::{
    batch::{MessageBatch, Sent},
    plan::SendRequest,
};
use crate::{db::Writer, error::AppError, telemetry};

/// The most sends written in one transaction; the rest wait for the next.
const MAX_BATCH: usize = 256;
/// Sends waiting for the writer before `sendMessage` itself waits to queue.
const MAX_WAITING: usize = 4096;

/// A send waiting for its batch, and where its outcome goes.
struct Waiting {
    request: SendRequest,
    reply: oneshot::Sender<Result<Sent, AppError>>,
}

/// The handle resolvers send through; the writer task ends when the last handle is dropped.
#[derive(Clone)]
pub struct SendQueue {
    waiting: mpsc::Sender<Waiting>,
}

/// The task that writes batches, one transaction each.
struct BatchWriter {
    writer: Writer,
}

impl SendQueue {
    /// Starts the writer task on `writer`.
    pub fn start(writer: Writer) -> Self {
        let (waiting, queue) = mpsc::channel(MAX_WAITING);
        tokio::spawn(BatchWriter { writer }.run(queue));
        Self { waiting }
    }

    /// Sends one message, in whichever batch it joins, and answers once that batch committed.
    pub async fn send(&self, request: SendRequest) -> Result<Sent, AppError> {
        let stopped = || AppError::Internal("the message writer stopped".to_owned());
        let (reply, outcome) = oneshot::channel();
        let queued = std::time::Instant::now();
        self.waiting
            .send(Waiting { request, reply })
            .await
            .map_err(|_| stopped())?;
        let sent = outcome.await.map_err(|_| stopped())??;
        telemetry::message_sent(queued);
        Ok(sent)
    }
}

impl BatchWriter {
    async fn run(self, mut queue: mpsc::Receiver<Waiting>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
            // A send whose request gave up while it waited (its deadline passed, or its
            // client went away) is not written: its client was told nothing was kept.
            batch.retain(|waiting| !waiting.reply.is_closed());
            if batch.is_empty() {
                continue;
            }
            let (requests, replies): (Vec<_>, Vec<_>) = batch
                .drain(..)
                .map(|waiting| (waiting.request, waiting.reply))
                .unzip();
            let started = std::time::Instant::now();
            let outcomes = self.write_isolating_faults(&requests).await;
            tracing::debug!(
                sends = requests.len(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "batch written"
            );
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
    }

    /// Writes the batch; if the database refuses it, writes each send on its own, so that
    /// whatever one send triggers fails that send alone and the others still land.
    async fn write_isolating_faults(
        &self,
        requests: &[SendRequest],
    ) -> Vec<Result<Sent, AppError>> {
        match self.write(requests).await {
            Ok(outcomes) => outcomes,
            Err(err) if requests.len() == 1 => vec![Err(err)],
            Err(err) => {
                tracing::warn!(error = %err, sends = requests.len(), "a batch of sends failed; writing them one by one");
                let mut outcomes = Vec::with_capacity(requests.len());
                for request in requests {
                    let outcome = self.write(std::slice::from_ref(request)).await;
                    outcomes.push(outcome.and_then(|mut single| {
                        single.pop().unwrap_or_else(|| {
                            Err(AppError::Internal("a send had no outcome".to_owned()))
                        })
                    }));
                }
                outcomes
            }
        }
    }

    /// One transaction for the whole batch; its events reach the bus after the commit.
    async fn write(
        &self,
        requests: &[SendRequest],
    ) -> Result<Vec<Result<Sent, AppError>>, AppError> {
        self.writer
            .run(async |write| MessageBatch::send(write, requests).await)
            .await
    }
}
