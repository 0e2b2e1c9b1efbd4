//! Argon2id password hashing, run off the async threads because it is deliberately slow.

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

use std::{num::NonZeroUsize, sync::LazyLock};

use tokio::sync::Semaphore;

use crate::error::AppError;

/// Hashes run on the blocking pool, one per core at most, so that a burst of sign-ins waits
/// its turn instead of taking every core from the requests on the async threads. Argon2 takes
/// 19 MiB per hash, so the count is also capped, keeping a burst from growing the heap by
/// hundreds of megabytes on a large machine.
static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
    Semaphore::new(cores.min(MAX_CONCURRENT_HASHES))
});

/// At most this many hashes at once (152 MiB of Argon2 memory), whatever the core count.
const MAX_CONCURRENT_HASHES: usize = 8;

async fn with_permit<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|err| AppError::Internal(format!("password hashing queue: {err}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| AppError::Internal(format!("password hashing task: {err}")))
}

/// Hashes a password into a self-describing PHC string (algorithm, parameters, salt).
pub async fn hash(password: String) -> Result<String, AppError> {
    with_permit(move || {
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
    with_permit(move || {
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
