//! Background work, run by every instance safely: the workers of the durable job queue
//! ([`workers`]), which send reminders, end and expire video calls and deliver pushes and
//! email, each job claimed by one instance; and a scheduler, the safety net under them, which
//! queues again the jobs of anything that fell due without one (rows written before the job
//! existed, or a job an operator deleted).
//!
//! The scheduler wakes on its interval, or at once when a manual clock is moved
//! (tests), and again right after start-up so that work that fell due while the
//! server was down is done first.

pub mod workers;

use std::time::Duration;

use crate::{
    bookings::{ReminderService, reminder_job},
    error::AppError,
    queue::JobQueue,
    shutdown::Shutdown,
    state::AppState,
    video::{self, Video},
};

/// How many due reminders one pass reads at a time.
const BATCH: u64 = 100;

/// Runs the scheduler until `shutdown` begins; a pass under way when it does is finished.
pub async fn run(state: AppState, video: &Video, interval: Duration, shutdown: &Shutdown) {
    let mut clock_moves = state.clock.moves();
    while !shutdown.is_stopping() {
        if let Err(err) = queue_due_reminders(&state).await {
            tracing::error!(error = %err, "sending booking reminders");
        }
        if let Err(err) = video::rooms::run_due(&state, video).await {
            tracing::error!(error = %err, "ending video calls");
        }
        match clock_moves.as_mut() {
            Some(moves) => {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    changed = moves.changed() => {
                        if changed.is_err() {
                            clock_moves = None;
                        }
                    }
                    () = shutdown.stopping() => {}
                }
            }
            None => {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = shutdown.stopping() => {}
                }
            }
        }
    }
}

/// Queues the job of every reminder that is due and not settled; one that still has its job
/// keeps it (by its dedupe key), and a job run twice sends nothing the second time.
async fn queue_due_reminders(state: &AppState) -> Result<(), AppError> {
    let mut after = None;
    loop {
        let due = ReminderService::due(&state.db, state.clock.now(), after, BATCH).await?;
        let Some(last) = due.last() else {
            return Ok(());
        };
        after = Some((last.due_at, last.id));
        let exhausted = (due.len() as u64) < BATCH;
        let jobs = due
            .iter()
            .map(|reminder| reminder_job(reminder.id, reminder.due_at))
            .collect::<Vec<_>>();
        state
            .writer
            .run(async |write| JobQueue::enqueue(write, jobs.clone()).await)
            .await?;
        if exhausted {
            return Ok(());
        }
    }
}
