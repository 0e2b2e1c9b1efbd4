//! Authentication: passwords, tokens, and the [`Viewer`] every resolver acts for.
//!
//! The transports (HTTP header, graphql-ws `connection_init`) hand their bearer
//! token to the [`Authenticator`]; resolvers only ever see the resulting
//! [`Credentials`] in the GraphQL context.

mod known_users;
pub mod password;
mod token;
mod viewer;

pub use token::{TokenService, VerifiedToken};
pub use viewer::{Authenticator, Credentials, Viewer, viewer};
