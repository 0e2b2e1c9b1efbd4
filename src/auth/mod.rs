//! Authentication: passwords, tokens, and the [`Viewer`] every resolver acts for.
//!
//! The transports (HTTP header, graphql-ws `connection_init`) hand their bearer
//! token to the [`Authenticator`]; resolvers only ever see the resulting
//! [`Credentials`] in the GraphQL context.

mod known_users;
pub mod password;
mod sign_in_limits;
mod token;
mod viewer;

pub use sign_in_limits::{ClientAddr, SignInLimits};
pub use token::{TokenService, VerifiedToken};
pub use viewer::{Authenticator, Credentials, Viewer, viewer};
