//! The GraphQL face of signing in: `register` and `login`, each limited per client address
//! and per email, answering with a bearer token.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::enums::Role;
use uuid::Uuid;

use super::Auth;
use crate::{
    error::AppError,
    state::AppState,
    users::{Registration, User, UserService, password},
    viewer::ClientAddr,
};

/// A signed-in session: the bearer token and who it is for.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <token>`, or in the graphql-ws `connection_init` payload.
    token: String,
    expires_at: DateTime<Utc>,
    user: User,
}

#[derive(InputObject)]
pub struct RegisterInput {
    email: String,
    /// 8 to 128 characters.
    password: String,
    display_name: String,
    /// CARE_RECIPIENT or CAREGIVER.
    role: Role,
    /// IANA timezone; UTC when omitted.
    timezone: Option<String>,
}

#[derive(InputObject)]
pub struct LoginInput {
    email: String,
    password: String,
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates an account and signs it in. Limited per client address and per email
    /// (`RATE_LIMITED` with `extensions.retryAfterSeconds`).
    async fn register(
        &self,
        ctx: &Context<'_>,
        input: RegisterInput,
    ) -> Result<AuthPayload, AppError> {
        let state = AppState::of(ctx);
        let auth = ctx.data_unchecked::<Auth>();
        let registration = Registration {
            email: input.email,
            password: input.password,
            display_name: input.display_name,
            role: input.role,
            timezone: input.timezone,
        }
        .validated()?;
        auth.sign_in
            .register(&registration.email, ctx.data_opt::<ClientAddr>().copied())?;
        let password_hash = password::hash(registration.password.clone()).await?;
        let user = state
            .writer
            .run(async |write| UserService::register(write, registration, password_hash).await)
            .await?;
        signed_in(ctx, user.id).await
    }

    /// Signs in with email and password. Limited per client address and per email
    /// (`RATE_LIMITED` with `extensions.retryAfterSeconds`).
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload, AppError> {
        let state = AppState::of(ctx);
        ctx.data_unchecked::<Auth>()
            .sign_in
            .login(&input.email, ctx.data_opt::<ClientAddr>().copied())?;
        let user = UserService::login(&state.db, &input.email, input.password).await?;
        signed_in(ctx, user.id).await
    }
}

async fn signed_in(ctx: &Context<'_>, user_id: Uuid) -> Result<AuthPayload, AppError> {
    let state = AppState::of(ctx);
    let tokens = &ctx.data_unchecked::<Auth>().tokens;
    let (token, expires_at) = tokens.issue(user_id, state.clock.now())?;
    let user = User::signed_in(&state.db, user_id).await?;
    Ok(AuthPayload {
        token,
        expires_at,
        user,
    })
}
