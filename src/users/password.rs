//! Argon2id password hashing, on threads of its own at a low priority, because it is
//! deliberately slow: a burst of sign-ins waits its turn instead of taking the cores from
//! the requests on the async threads.

use std::{
    num::NonZeroUsize,
    sync::{Arc, LazyLock, Mutex, mpsc},
};

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::oneshot;

use crate::{error::AppError, sync::lock};

/// At most this many hashes at once (152 MiB of Argon2 memory), whatever the core count.
const MAX_CONCURRENT_HASHES: usize = 8;
/// The nice value of the hashing threads: the scheduler runs them when the async threads
/// leave a core idle. On two cores, eight guessers hashing at the normal priority held both
/// cores for half a second, and every chat message of that moment waited.
const HASHING_NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The queue of the hashing threads: all cores but one of them, so one is always left to
/// everything else, and at most [`MAX_CONCURRENT_HASHES`]. Argon2 takes 19 MiB per hash, so
/// the cap keeps a burst from growing the heap by hundreds of megabytes on a large machine.
static HASHERS: LazyLock<Mutex<mpsc::Sender<Job>>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
    let threads = cores.saturating_sub(1).clamp(1, MAX_CONCURRENT_HASHES);
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for index in 0..threads {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("password-hashing-{index}"))
            .spawn(move || {
                lower_this_threads_priority();
                loop {
                    let job = lock(&queue).recv();
                    match job {
                        Ok(job) => job(),
                        Err(mpsc::RecvError) => return,
                    }
                }
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "could not start a password hashing thread");
        }
    }
    Mutex::new(jobs)
});

/// Linux gives each thread its own nice value, so this lowers only the hashing thread.
fn lower_this_threads_priority() {
    // SAFETY: setpriority only reads its arguments; `0` names the calling thread on Linux.
    let status = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, HASHING_NICENESS) };
    if status != 0 {
        tracing::debug!("could not lower the priority of a password hashing thread");
    }
}

async fn on_hashing_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    let (done, result) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(work());
    });
    lock(&HASHERS)
        .send(job)
        .map_err(|_| AppError::Internal("password hashing threads are gone".to_owned()))?;
    result
        .await
        .map_err(|_| AppError::Internal("a password hashing job was dropped".to_owned()))
}

/// Hashes a password into a self-describing PHC string (algorithm, parameters, salt).
pub async fn hash(password: String) -> Result<String, AppError> {
    on_hashing_thread(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|err| AppError::Internal(format!("hashing a password: {err}")))
    })
    .await?
}

/// Checks a password against a stored hash; `None` still spends the same effort,
/// so response times do not reveal which emails have accounts.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, AppError> {
    on_hashing_thread(move || {
        let argon2 = Argon2::default();
        match stored {
            Some(stored) => {
                let parsed = PasswordHash::new(&stored)
                    .map_err(|err| AppError::Internal(format!("stored password hash: {err}")))?;
                Ok(argon2.verify_password(password.as_bytes(), &parsed).is_ok())
            }
            None => {
                let salt = SaltString::generate(&mut OsRng);
                let _ = argon2.hash_password(password.as_bytes(), &salt);
                Ok(false)
            }
        }
    })
    .await?
}
