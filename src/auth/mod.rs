//! Authentication: tokens in, a [`crate::viewer::Viewer`] out, and the limits on signing in.
//!
//! The transports (HTTP header, graphql-ws `connection_init`) hand their bearer
//! token to the [`Authenticator`]; resolvers only ever see the resulting
//! [`crate::viewer::Credentials`] in the GraphQL context.

mod known_users;
mod sign_in_limits;
mod token;
mod viewer;

pub use sign_in_limits::SignInLimits;
pub use token::{TokenService, VerifiedToken};
pub use viewer::Authenticator;
