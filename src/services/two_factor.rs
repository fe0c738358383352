//! TOTP two-factor for people: enrolment (a secret shown once, confirmed with a code), turning
//! it off (password and a code), recovery codes (ten, single use, kept as HMACs under the
//! pepper), and the code checks sign-in uses. The secret is sealed under the user's own data
//! key (`tenant_data_keys`, keyed by the user id, wrapped by the KEK) — in the pending
//! enrolment, the `user.totp_enrolled` event and the `users` table alike.

use base64::Engine;
use time::OffsetDateTime;
use tokenhub_aggregates::user::UserCommand;

use crate::auth::totp;
use crate::commands::{execute_retrying, RequestMeta};
use crate::crypto::data_keys::tenant_dek;
use crate::error::Code;
use crate::error::{Failure, Outcome};
use crate::services::users::{metadata_of, UserRow};
use crate::services::Ctx;

/// Recovery codes per set.
pub const RECOVERY_CODES: usize = 10;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn aad(user_id: &str) -> Vec<u8> {
    format!("tokenhub:totp:{user_id}").into_bytes()
}

fn crypto_error(e: impl std::fmt::Display) -> Failure {
    Failure::internal(&format!("TOTP secret sealing: {e}"))
}

async fn seal(state: &Ctx, user_id: &str, secret: &[u8]) -> Outcome<(Vec<u8>, Vec<u8>)> {
    let dek = tenant_dek(&state.pool, &state.keks, user_id).await.map_err(crypto_error)?;
    dek.seal(&aad(user_id), secret).map_err(crypto_error)
}

async fn open(state: &Ctx, user_id: &str, nonce: &[u8], ciphertext: &[u8]) -> Outcome<Vec<u8>> {
    let dek = tenant_dek(&state.pool, &state.keks, user_id).await.map_err(crypto_error)?;
    dek.open(&aad(user_id), nonce, ciphertext).map_err(crypto_error)
}

/// The enrolled secret of `user`.
pub async fn enrolled_secret(state: &Ctx, user: &UserRow) -> Outcome<Vec<u8>> {
    let (Some(nonce), Some(ciphertext)) = (&user.totp_nonce, &user.totp_ciphertext) else {
        return Err(Failure::new(Code::TotpNotEnrolled, "two-factor authentication is not on"));
    };
    let nonce = B64.decode(nonce).map_err(crypto_error)?;
    let ciphertext = B64.decode(ciphertext).map_err(crypto_error)?;
    open(state, &user.user_id, &nonce, &ciphertext).await
}

fn unix_now() -> u64 {
    OffsetDateTime::now_utc().unix_timestamp().max(0) as u64
}

/// The step of `code` for `secret` now (±1 step), or 422 `invalid_totp_code`.
pub fn check_code(secret: &[u8], code: &str) -> Outcome<u64> {
    totp::verify(secret, code, unix_now()).ok_or_else(|| {
        Failure::new(Code::InvalidTotpCode, "the code is wrong: six digits from the authenticator app")
    })
}

/// The step of `code` for `secret` now, if right (sign-in's check).
pub fn code_step(secret: &[u8], code: &str) -> Option<u64> {
    totp::verify(secret, code, unix_now())
}

/// A recovery code as stored: the HMAC under the pepper of the user and the normalised code
/// (lower case, no dashes or spaces).
pub fn recovery_code_hash(state: &Ctx, user_id: &str, code: &str) -> String {
    let normalised: String =
        code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
    state.hasher.hash_hex(&format!("recovery:{user_id}:{normalised}"))
}

/// A new set: the codes (shown once, `xxxx-xxxx-xxxx`) and their hashes.
fn new_recovery_codes(state: &Ctx, user_id: &str) -> (Vec<String>, Vec<String>) {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw = crate::crypto::random_alphanumeric(12).to_ascii_lowercase();
            let code = format!("{}-{}-{}", &raw[..4], &raw[4..8], &raw[8..]);
            let hash = recovery_code_hash(state, user_id, &code);
            (code, hash)
        })
        .unzip()
}

/// Starts (or restarts) an enrolment: a new secret, kept sealed until confirmed.
pub async fn enroll(state: &Ctx, user: &UserRow) -> Outcome<totp::Enrolment> {
    if user.totp_enrolled {
        return Err(Failure::new(Code::TotpAlreadyEnrolled, "two-factor authentication is already on"));
    }
    let secret = totp::generate_secret();
    let (nonce, ciphertext) = seal(state, &user.user_id, &secret).await?;
    sqlx::query(
        "INSERT INTO totp_enrolments (user_id, nonce, ciphertext) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET nonce = $2, ciphertext = $3, created_at = now()",
    )
    .bind(&user.user_id)
    .bind(nonce)
    .bind(ciphertext)
    .execute(&state.pool)
    .await?;
    totp::enrolment(&secret, &user.email).ok_or_else(|| Failure::internal(&"TOTP enrolment material"))
}

/// Confirms the pending enrolment with a code of it: TOTP is on; answers the first recovery
/// codes (shown once).
pub async fn confirm(state: &Ctx, ctx: &RequestMeta, user: &UserRow, code: &str) -> Outcome<Vec<String>> {
    let pending: Option<(Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT nonce, ciphertext FROM totp_enrolments WHERE user_id = $1")
            .bind(&user.user_id)
            .fetch_optional(&state.pool)
            .await?;
    let Some((nonce, ciphertext)) = pending else {
        return Err(Failure::new(Code::TotpEnrolmentNotStarted, "start with POST /auth/totp/enroll"));
    };
    let secret = open(state, &user.user_id, &nonce, &ciphertext).await?;
    let step = check_code(&secret, code)?;
    let (nonce, ciphertext) = seal(state, &user.user_id, &secret).await?;
    let (codes, hashes) = new_recovery_codes(state, &user.user_id);
    let at = OffsetDateTime::now_utc();
    let command = || UserCommand::ConfirmTotp {
        ciphertext: B64.encode(&ciphertext),
        nonce: B64.encode(&nonce),
        step,
        recovery_code_hashes: hashes.clone(),
        at,
    };
    execute_retrying(&state.commands.users, &user.user_id, command, metadata_of(user, ctx)).await?;
    sqlx::query("DELETE FROM totp_enrolments WHERE user_id = $1")
        .bind(&user.user_id)
        .execute(&state.pool)
        .await?;
    state.readmodels.wait_for_head().await;
    tracing::info!(user_id = %user.user_id, "two-factor authentication on");
    Ok(codes)
}

/// Turns TOTP off: needs the password and a current code.
pub async fn remove(
    state: &Ctx,
    ctx: &RequestMeta,
    user: &UserRow,
    password: &str,
    code: &str,
) -> Outcome<()> {
    crate::services::lockout::step_up(state, ctx, user, remove_checked(state, ctx, user, password, code))
        .await
}

async fn remove_checked(
    state: &Ctx,
    ctx: &RequestMeta,
    user: &UserRow,
    password: &str,
    code: &str,
) -> Outcome<()> {
    let ok = state
        .passwords
        .verify(password, crate::services::users::password_of(state, Some(user)).await?.as_deref())
        .await
        .map_err(|_| crate::auth::password::busy())?;
    if !ok {
        return Err(Failure::new(Code::WrongPassword, "the password is wrong"));
    }
    let secret = enrolled_secret(state, user).await?;
    let step = check_code(&secret, code)?;
    let at = OffsetDateTime::now_utc();
    let command = || UserCommand::RemoveTotp { step, at };
    execute_retrying(&state.commands.users, &user.user_id, command, metadata_of(user, ctx)).await?;
    state.readmodels.wait_for_head().await;
    tracing::info!(user_id = %user.user_id, "two-factor authentication off");
    Ok(())
}

/// Replaces the recovery codes (needs a current code); answers the new ones (shown once).
pub async fn regenerate(state: &Ctx, ctx: &RequestMeta, user: &UserRow, code: &str) -> Outcome<Vec<String>> {
    let secret = enrolled_secret(state, user).await?;
    let step =
        crate::services::lockout::step_up(state, ctx, user, async { check_code(&secret, code) }).await?;
    let (codes, hashes) = new_recovery_codes(state, &user.user_id);
    let at = OffsetDateTime::now_utc();
    let command = || UserCommand::RegenerateRecoveryCodes { recovery_code_hashes: hashes.clone(), step, at };
    execute_retrying(&state.commands.users, &user.user_id, command, metadata_of(user, ctx)).await?;
    Ok(codes)
}
