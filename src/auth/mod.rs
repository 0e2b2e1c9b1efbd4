//! Authentication: tokens in, a [`crate::viewer::Viewer`] out, and the limits on signing in.
//!
//! The transports (HTTP header, graphql-ws `connection_init`) hand their bearer
//! token to the [`Authenticator`]; resolvers only ever see the resulting
//! [`crate::viewer::Credentials`] in the GraphQL context.

mod graphql;
mod known_users;
mod sign_in_limits;
mod token;
mod viewer;

use std::sync::Arc;

pub use graphql::AuthMutation;
pub use sign_in_limits::SignInLimits;
pub use token::{TokenService, VerifiedToken};
pub use viewer::Authenticator;

/// Authentication's shared parts: the HTTP and websocket transports authenticate with it,
/// and `register` and `login` sign in with it.
#[derive(Clone)]
pub struct Auth {
    pub tokens: Arc<TokenService>,
    pub authenticator: Authenticator,
    /// Rate limits on `login` and `register`.
    pub sign_in: Arc<SignInLimits>,
}
