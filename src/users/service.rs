//! The rules of accounts and profiles, over SeaORM.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    booking, caregiver_profile,
    enums::{Availability, BookingStatus, NotificationType, Role},
    user,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, sea_query::Query,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    db::Write,
    db::batch_shape::BatchShape,
    db::parties::between,
    error::AppError,
    notifications::{Notice, NotificationService},
    paging::{IdCursor, PageRequest},
    users::password,
    viewer::Viewer,
};

const MAX_DISPLAY_NAME: usize = 100;
const MAX_BIO: usize = 2000;
const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 128;

/// What `register` needs; validated by [`UserService::register`] before anything is stored.
#[derive(Debug)]
pub struct Registration {
    pub email: String,
    pub password: String,
    pub display_name: String,
    pub role: Role,
    pub timezone: Option<String>,
}

/// A partial profile update: `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ProfileChanges {
    pub display_name: Option<String>,
    pub timezone: Option<String>,
    pub bio: Option<String>,
    /// `Some(None)` clears the rate.
    pub hourly_rate_cents: Option<Option<i32>>,
}

impl Registration {
    /// Checks and normalises every field, before the (slow) password hash is computed.
    pub fn validated(self) -> Result<Self, AppError> {
        if self.role == Role::Admin {
            return Err(AppError::bad_input(
                "role",
                "admins cannot register themselves; choose CARE_RECIPIENT or CAREGIVER",
            ));
        }
        let length = self.password.chars().count();
        if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&length) {
            return Err(AppError::bad_input(
                "password",
                format!("password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
            ));
        }
        Ok(Self {
            email: normalized_email(&self.email)?,
            display_name: display_name(&self.display_name)?,
            timezone: Some(timezone(self.timezone.as_deref().unwrap_or("UTC"))?),
            ..self
        })
    }
}

/// Accounts and profiles.
pub struct UserService;

impl UserService {
    /// The user with this id, whoever asks; callers decide what the viewer may see.
    pub async fn find(
        conn: &impl ConnectionTrait,
        id: Uuid,
    ) -> Result<Option<user::Model>, AppError> {
        Ok(user::Entity::find_by_id(id).one(conn).await?)
    }

    /// Creates an account from a [`Registration::validated`] registration and its password hash.
    /// Caregivers get an empty profile, marked unavailable until they say otherwise.
    pub async fn register(
        write: &Write,
        input: Registration,
        password_hash: String,
    ) -> Result<user::Model, AppError> {
        let account = user::Model {
            id: Uuid::now_v7(),
            email: input.email,
            display_name: input.display_name,
            role: input.role,
            password_hash: Some(password_hash),
            timezone: input.timezone.unwrap_or_else(|| "UTC".to_owned()),
            created_at: write.now(),
            updated_at: write.now(),
        };
        Self::insert(write, account).await
    }

    /// The user with this email, for operator commands.
    pub async fn find_by_email(
        conn: &impl ConnectionTrait,
        email: &str,
    ) -> Result<Option<user::Model>, AppError> {
        Ok(user::Entity::find()
            .filter(user::Column::Email.eq(email.trim().to_lowercase()))
            .one(conn)
            .await?)
    }

    /// The user whose email and password match; the same error for an unknown email and a wrong password.
    pub async fn login(
        conn: &impl ConnectionTrait,
        email: &str,
        password: String,
    ) -> Result<user::Model, AppError> {
        let user = Self::find_by_email(conn, email).await?;
        let stored = user.as_ref().and_then(|user| user.password_hash.clone());
        match (password::verify(password, stored).await?, user) {
            (true, Some(user)) => Ok(user),
            _ => Err(AppError::Unauthenticated(
                "invalid email or password".to_owned(),
            )),
        }
    }

    /// Creates the account of a user that Supabase Auth vouches for, on their first request.
    /// `user_metadata` may carry `display_name` (or `full_name`), `role` and `timezone`.
    /// `CONFLICT` when the account exists by now (two first requests raced).
    pub async fn provision_external(
        write: &Write,
        id: Uuid,
        email: Option<String>,
        metadata: &serde_json::Value,
    ) -> Result<user::Model, AppError> {
        let rejected =
            |reason: &str| AppError::Unauthenticated(format!("token rejected: {reason}"));
        let email = email
            .as_deref()
            .map(normalized_email)
            .transpose()
            .map_err(|_| rejected("the Supabase token carries no valid email"))?
            .ok_or_else(|| rejected("the Supabase token carries no email"))?;
        let text = |name: &str| metadata.get(name).and_then(|value| value.as_str());
        let fallback_name = email.split('@').next().unwrap_or("user").to_owned();
        let name = text("display_name")
            .or_else(|| text("full_name"))
            .and_then(|name| display_name(name).ok())
            .unwrap_or(fallback_name);
        let role = match text("role") {
            Some("caregiver") => Role::Caregiver,
            _ => Role::CareRecipient,
        };
        let tz = text("timezone")
            .and_then(|tz| timezone(tz).ok())
            .unwrap_or_else(|| "UTC".to_owned());
        let account = user::Model {
            id,
            email,
            display_name: name,
            role,
            password_hash: None,
            timezone: tz,
            created_at: write.now(),
            updated_at: write.now(),
        };
        Self::insert(write, account).await
    }

    /// Stores `account`, with an empty profile for a caregiver; `CONFLICT` when its email is
    /// taken.
    async fn insert(write: &Write, account: user::Model) -> Result<user::Model, AppError> {
        let (id, role) = (account.id, account.role);
        let user =
            account.into_active_model().insert(write).await.map_err(
                |err| match AppError::from(err) {
                    AppError::Conflict(_) => email_taken(),
                    other => other,
                },
            )?;
        if role == Role::Caregiver {
            caregiver_profile::ActiveModel {
                user_id: Set(id),
                bio: Set(String::new()),
                hourly_rate_cents: Set(None),
                availability: Set(Availability::Unavailable),
                updated_at: Set(write.now()),
            }
            .insert(write)
            .await?;
        }
        Ok(user)
    }

    /// Changes the viewer's own profile; caregiver-only fields are refused for others.
    /// The user is notified, so a change made from another device does not go unnoticed.
    pub async fn update_profile(
        write: &Write,
        viewer: &Viewer,
        changes: ProfileChanges,
    ) -> Result<user::Model, AppError> {
        let now = write.now();
        let display_name = changes
            .display_name
            .as_deref()
            .map(display_name)
            .transpose()?;
        let timezone = changes.timezone.as_deref().map(timezone).transpose()?;
        if let Some(bio) = &changes.bio
            && bio.chars().count() > MAX_BIO
        {
            return Err(AppError::bad_input(
                "bio",
                format!("bio must be at most {MAX_BIO} characters"),
            ));
        }
        if let Some(Some(rate)) = changes.hourly_rate_cents
            && rate < 0
        {
            return Err(AppError::bad_input(
                "hourlyRateCents",
                "hourlyRateCents cannot be negative",
            ));
        }
        let is_caregiver_change = changes.bio.is_some() || changes.hourly_rate_cents.is_some();
        let changed_fields: Vec<&str> = [
            (display_name.is_some(), "display name"),
            (timezone.is_some(), "timezone"),
            (changes.bio.is_some(), "bio"),
            (changes.hourly_rate_cents.is_some(), "hourly rate"),
        ]
        .into_iter()
        .filter_map(|(changed, name)| changed.then_some(name))
        .collect();
        if is_caregiver_change && viewer.role != Role::Caregiver {
            return Err(AppError::bad_input(
                "bio",
                "bio and hourlyRateCents belong to caregiver profiles",
            ));
        }
        let user = Self::find(write, viewer.id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        let mut active: user::ActiveModel = user.into();
        if let Some(name) = &display_name {
            active.display_name = Set(name.clone());
        }
        if let Some(tz) = timezone {
            active.timezone = Set(tz);
        }
        active.updated_at = Set(now);
        let user = active.update(write).await?;
        if is_caregiver_change {
            let profile = Self::profile(write, viewer.id).await?;
            let mut active: caregiver_profile::ActiveModel = profile.into();
            if let Some(bio) = changes.bio {
                active.bio = Set(bio);
            }
            if let Some(rate) = changes.hourly_rate_cents {
                active.hourly_rate_cents = Set(rate);
            }
            active.updated_at = Set(now);
            active.update(write).await?;
        }
        if !changed_fields.is_empty() {
            let notice = Notice {
                user_id: user.id,
                kind: NotificationType::ProfileUpdated,
                title: "Profile updated".to_owned(),
                body: match &display_name {
                    Some(name) => format!(
                        "Your {} changed. Others now see you as {name}.",
                        changed_fields.join(", ")
                    ),
                    None => format!("Your {} changed.", changed_fields.join(", ")),
                },
                data: json!({ "userId": user.id }),
                dedupe_key: None,
            };
            NotificationService::notify(write, notice).await?;
        }
        Ok(user)
    }

    /// Sets the viewer's availability; only caregivers have one. A real change notifies the
    /// care recipients who have upcoming bookings with them.
    pub async fn set_availability(
        write: &Write,
        viewer: &Viewer,
        availability: Availability,
    ) -> Result<caregiver_profile::Model, AppError> {
        let now = write.now();
        if viewer.role != Role::Caregiver {
            return Err(AppError::Forbidden(
                "only caregivers have an availability".to_owned(),
            ));
        }
        let profile = Self::profile(write, viewer.id).await?;
        if profile.availability == availability {
            return Ok(profile);
        }
        let mut active: caregiver_profile::ActiveModel = profile.into();
        active.availability = Set(availability);
        active.updated_at = Set(now);
        let profile = active.update(write).await?;
        let caregiver = Self::find(write, viewer.id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        let status = match availability {
            Availability::Available => "available",
            Availability::Busy => "busy",
            Availability::Unavailable => "unavailable",
        };
        for recipient in Self::recipients_with_upcoming(write, viewer.id, now).await? {
            let notice = Notice {
                user_id: recipient,
                kind: NotificationType::CaregiverAvailabilityChanged,
                title: format!("{} is now {status}", caregiver.display_name),
                body: format!(
                    "{} changed their availability to {status}. You have upcoming bookings with them.",
                    caregiver.display_name
                ),
                data: json!({ "caregiverId": caregiver.id, "availability": status }),
                dedupe_key: None,
            };
            NotificationService::notify(write, notice).await?;
        }
        Ok(profile)
    }

    /// A user as the viewer may see them: themselves, any caregiver (the marketplace is public),
    /// and care recipients they share a booking with. Everyone else is `NOT_FOUND`.
    pub async fn visible_to(
        conn: &impl ConnectionTrait,
        viewer: &Viewer,
        id: Uuid,
    ) -> Result<user::Model, AppError> {
        let user = Self::find(conn, id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        let visible = user.id == viewer.id
            || user.role == Role::Caregiver
            || Self::share_a_booking(conn, viewer.id, user.id).await?;
        if visible {
            Ok(user)
        } else {
            Err(AppError::NotFound("user"))
        }
    }

    /// Caregivers in the order they joined, optionally only those with one availability.
    pub async fn caregivers(
        conn: &impl ConnectionTrait,
        availability: Option<Availability>,
        page: &PageRequest<IdCursor>,
    ) -> Result<Vec<user::Model>, AppError> {
        let mut query = user::Entity::find()
            .filter(user::Column::Role.eq(Role::Caregiver))
            .order_by_asc(user::Column::Id)
            .limit(page.fetch_limit());
        if let Some(availability) = availability {
            query = query.filter(
                user::Column::Id.in_subquery(
                    Query::select()
                        .column(caregiver_profile::Column::UserId)
                        .from(caregiver_profile::Entity)
                        .and_where(caregiver_profile::Column::Availability.eq(availability))
                        .to_owned(),
                ),
            );
        }
        if let Some(IdCursor(after)) = &page.after {
            query = query.filter(user::Column::Id.gt(*after));
        }
        Ok(query.all(conn).await?)
    }

    /// The caregiver profile of `user_id`; every caregiver has one from registration on.
    pub async fn profile(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
    ) -> Result<caregiver_profile::Model, AppError> {
        caregiver_profile::Entity::find_by_id(user_id)
            .one(conn)
            .await?
            .ok_or(AppError::NotFound("caregiver profile"))
    }

    /// The two users an event concerns (a booking's, a chat's, a call's parties), in one query.
    pub async fn pair(
        conn: &impl ConnectionTrait,
        first: Uuid,
        second: Uuid,
    ) -> Result<(user::Model, user::Model), AppError> {
        let mut users = Self::find_many(conn, [first, second]).await?;
        let mut take = |id: Uuid| users.remove(&id).ok_or(AppError::NotFound("user"));
        Ok((take(first)?, take(second)?))
    }

    /// Users by id, in one query: the authors of a batch of messages, say.
    pub async fn find_many(
        conn: &impl ConnectionTrait,
        ids: impl IntoIterator<Item = Uuid>,
    ) -> Result<HashMap<Uuid, user::Model>, AppError> {
        Ok(user::Entity::find()
            .filter(BatchShape::of(conn).is_in(user::Column::Id, ids))
            .all(conn)
            .await?
            .into_iter()
            .map(|user| (user.id, user))
            .collect())
    }

    /// Users and their caregiver profiles by id, in one query each, for the data loader.
    pub async fn load_many(
        conn: &impl ConnectionTrait,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, (user::Model, Option<caregiver_profile::Model>)>, AppError> {
        let users = Self::find_many(conn, ids.iter().copied()).await?;
        let mut profiles: HashMap<Uuid, caregiver_profile::Model> =
            caregiver_profile::Entity::find()
                .filter(caregiver_profile::Column::UserId.is_in(ids.iter().copied()))
                .all(conn)
                .await?
                .into_iter()
                .map(|profile| (profile.user_id, profile))
                .collect();
        Ok(users
            .into_iter()
            .map(|(id, user)| (id, (user, profiles.remove(&id))))
            .collect())
    }

    /// The care recipients with a pending or accepted booking with `caregiver_id` still ahead:
    /// the people a change of the caregiver's availability concerns.
    async fn recipients_with_upcoming(
        conn: &impl ConnectionTrait,
        caregiver_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, AppError> {
        Ok(booking::Entity::find()
            .select_only()
            .column(booking::Column::CareRecipientId)
            .distinct()
            .filter(booking::Column::CaregiverId.eq(caregiver_id))
            .filter(
                booking::Column::Status.is_in([BookingStatus::Pending, BookingStatus::Accepted]),
            )
            .filter(booking::Column::StartsAt.gt(now))
            .into_tuple()
            .all(conn)
            .await?)
    }

    /// Whether two users have ever had a booking together, which lets them see each other.
    async fn share_a_booking(
        conn: &impl ConnectionTrait,
        a: Uuid,
        b: Uuid,
    ) -> Result<bool, AppError> {
        let shared = booking::Entity::find()
            .filter(between(
                booking::Column::CareRecipientId,
                booking::Column::CaregiverId,
                [a, b],
            ))
            .count(conn)
            .await?;
        Ok(shared > 0)
    }
}

fn email_taken() -> AppError {
    AppError::Conflict("an account with this email already exists".to_owned())
}

fn normalized_email(raw: &str) -> Result<String, AppError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 320
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(AppError::bad_input("email", "email is not a valid address"))
    }
}

fn display_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME {
        return Err(AppError::bad_input(
            "displayName",
            format!("displayName must be 1 to {MAX_DISPLAY_NAME} characters"),
        ));
    }
    Ok(name.to_owned())
}

fn timezone(raw: &str) -> Result<String, AppError> {
    raw.trim()
        .parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| {
            AppError::bad_input(
                "timezone",
                "timezone must be an IANA name such as Europe/Lisbon",
            )
        })
}
