//! The GraphQL face of accounts: `me`, `user`, `caregivers`, profiles and availability.

use std::collections::HashMap;

use async_graphql::{
    Context, InputObject, Object,
    connection::Connection,
    dataloader::{DataLoader, Loader},
};
use chrono::{DateTime, Utc};
use entity::{
    caregiver_profile,
    enums::{Availability, Role},
    user,
};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

use super::service::{ProfileChanges, UserService};
use crate::{
    error::AppError,
    paging::{IdCursor, PageRequest, page_cost},
    state::{AppState, write_as_viewer},
    viewer::viewer,
};

/// A person on the marketplace, as the viewer may see them.
#[derive(Clone)]
pub struct User {
    user: user::Model,
    profile: Option<caregiver_profile::Model>,
    /// Set when the user just proved who they are (register, login) before any viewer exists.
    is_self: bool,
}

impl User {
    fn new(user: user::Model, profile: Option<caregiver_profile::Model>) -> Self {
        Self {
            user,
            profile,
            is_self: false,
        }
    }

    /// The user as stored now, as themselves: what `register` and `login` answer with, before
    /// any viewer exists.
    pub async fn signed_in(db: &impl ConnectionTrait, id: Uuid) -> Result<User, AppError> {
        Ok(User {
            is_self: true,
            ..reloaded(db, id).await?
        })
    }

    /// Loads a user with their profile through the request's data loader.
    pub async fn load(ctx: &Context<'_>, id: Uuid) -> Result<User, AppError> {
        ctx.data_unchecked::<DataLoader<UserLoader>>()
            .load_one(id)
            .await?
            .ok_or(AppError::NotFound("user"))
    }
}

#[Object]
impl User {
    async fn id(&self) -> Uuid {
        self.user.id
    }

    /// Only visible to the user themselves; null for everyone else.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        let own = self.is_self || viewer(ctx).is_ok_and(|viewer| viewer.id == self.user.id);
        own.then_some(self.user.email.as_str())
    }

    async fn display_name(&self) -> &str {
        &self.user.display_name
    }

    async fn role(&self) -> Role {
        self.user.role
    }

    /// IANA timezone; notification text for this user is written in it.
    async fn timezone(&self) -> &str {
        &self.user.timezone
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.user.created_at
    }

    /// Present for caregivers.
    async fn caregiver_profile(&self) -> Option<CaregiverProfile<'_>> {
        self.profile.as_ref().map(CaregiverProfile)
    }
}

/// What a care recipient sees of a caregiver before booking.
pub struct CaregiverProfile<'a>(&'a caregiver_profile::Model);

#[Object]
impl CaregiverProfile<'_> {
    async fn bio(&self) -> &str {
        &self.0.bio
    }

    async fn hourly_rate_cents(&self) -> Option<i32> {
        self.0.hourly_rate_cents
    }

    async fn availability(&self) -> Availability {
        self.0.availability
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Batches the user look-ups of one request (booking parties, lists) into one query.
pub struct UserLoader(pub DatabaseConnection);

impl Loader<Uuid> for UserLoader {
    type Value = User;
    type Error = std::sync::Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, User>, Self::Error> {
        let found = UserService::load_many(&self.0, keys)
            .await
            .map_err(std::sync::Arc::new)?;
        Ok(found
            .into_iter()
            .map(|(id, (user, profile))| (id, User::new(user, profile)))
            .collect())
    }
}

/// A loader's error is shared by every key it was loading; each resolver gets its own copy,
/// with its code kept (an unavailable database stays retryable).
impl From<std::sync::Arc<AppError>> for AppError {
    fn from(err: std::sync::Arc<AppError>) -> Self {
        std::sync::Arc::unwrap_or_clone(err)
    }
}

/// Omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    display_name: Option<String>,
    timezone: Option<String>,
    /// Caregivers only.
    bio: Option<String>,
    /// Caregivers only; null clears it.
    hourly_rate_cents: async_graphql::MaybeUndefined<i32>,
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        let viewer = viewer(ctx)?;
        User::load(ctx, viewer.id).await
    }

    /// A user the viewer may see: themselves, a caregiver, or someone they share a booking with.
    async fn user(&self, ctx: &Context<'_>, id: Uuid) -> Result<User, AppError> {
        let viewer = viewer(ctx)?;
        let state = AppState::of(ctx);
        UserService::visible_to(&state.db, viewer, id).await?;
        User::load(ctx, id).await
    }

    /// Caregivers in the order they joined, optionally filtered by availability.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn caregivers(
        &self,
        ctx: &Context<'_>,
        availability: Option<Availability>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, User>, AppError> {
        viewer(ctx)?;
        let page = PageRequest::new(first, after)?;
        let state = AppState::of(ctx);
        let rows = UserService::caregivers(&state.db, availability, &page).await?;
        let ids: Vec<Uuid> = rows.iter().map(|user| user.id).collect();
        let mut profiles = UserService::load_many(&state.db, &ids).await?;
        Ok(page.connection(
            rows,
            |user| IdCursor(user.id),
            |user| {
                let profile = profiles.remove(&user.id).and_then(|(_, profile)| profile);
                User::new(user, profile)
            },
        ))
    }
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Changes the viewer's own profile.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateProfileInput,
    ) -> Result<User, AppError> {
        let changes = ProfileChanges {
            display_name: input.display_name,
            timezone: input.timezone,
            bio: input.bio,
            hourly_rate_cents: match input.hourly_rate_cents {
                async_graphql::MaybeUndefined::Undefined => None,
                async_graphql::MaybeUndefined::Null => Some(None),
                async_graphql::MaybeUndefined::Value(rate) => Some(Some(rate)),
            },
        };
        write_as_viewer(ctx, async |write, viewer| {
            UserService::update_profile(write, viewer, changes).await?;
            reloaded(write, viewer.id).await
        })
        .await
    }

    /// Says whether the viewer (a caregiver) takes new work.
    async fn set_availability(
        &self,
        ctx: &Context<'_>,
        availability: Availability,
    ) -> Result<User, AppError> {
        write_as_viewer(ctx, async |write, viewer| {
            UserService::set_availability(write, viewer, availability).await?;
            reloaded(write, viewer.id).await
        })
        .await
    }
}

/// The user as stored now, bypassing the request's loader cache after a change.
async fn reloaded(db: &impl ConnectionTrait, id: Uuid) -> Result<User, AppError> {
    let (user, profile) = UserService::load_many(db, &[id])
        .await?
        .remove(&id)
        .ok_or(AppError::NotFound("user"))?;
    Ok(User::new(user, profile))
}
