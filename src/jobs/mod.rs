//! Background work, run by every instance safely: on a schedule, booking reminders, expiring
//! video call requests and ending calls at their limit; and the workers of the durable job
//! queue ([`workers`]), which deliver pushes and email.
//!
//! The scheduler wakes on its interval, or at once when a manual clock is moved
//! (tests), and again right after start-up so that work that fell due while the
//! server was down is done first.

pub mod workers;

use std::time::Duration;

use crate::{
    bookings::ReminderService,
    error::AppError,
    shutdown::Shutdown,
    state::AppState,
    video::{self, Video},
};

/// How many due reminders one pass handles before looking again.
const BATCH: u64 = 100;

/// Runs the scheduler until `shutdown` begins; a pass under way when it does is finished.
pub async fn run(state: AppState, video: &Video, interval: Duration, shutdown: &Shutdown) {
    let mut clock_moves = state.clock.moves();
    while !shutdown.is_stopping() {
        if let Err(err) = send_due_reminders(&state).await {
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

/// Sends every reminder that is due now; each in its own transaction, published on commit.
pub async fn send_due_reminders(state: &AppState) -> Result<usize, AppError> {
    let mut sent = 0;
    loop {
        let now = state.clock.now();
        let due = ReminderService::due(&state.db, now, BATCH).await?;
        let exhausted = (due.len() as u64) < BATCH;
        for reminder in due {
            let settled = state
                .writer
                .run(async |write| ReminderService::settle(write, &reminder).await)
                .await?;
            if settled {
                sent += 1;
            }
        }
        if exhausted {
            return Ok(sent);
        }
    }
}
