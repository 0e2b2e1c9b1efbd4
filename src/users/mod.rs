//! Accounts, sign-in, profiles and caregiver availability.

mod graphql;
pub mod password;
mod service;

pub use graphql::{User, UserLoader, UserMutation, UserQuery};
pub use service::{ProfileChanges, Registration, UserService};
