//! People's passwords: the policy (12 to 256 characters; none of the 10,000 most common
//! passwords of `common_passwords.txt`, compared case-insensitively; not the e-mail; a zxcvbn
//! strength score of 4 of 4 (at least 10^10 guesses), with the e-mail, its parts and the product's name as
//! the person's own words) and argon2id hashing, bounded like the master key's (a few at a
//! time, 503 beyond).
//!
//! `common_passwords.txt` is the head of the ranked password frequency list of zxcvbn
//! (Dropbox's strength estimator, MIT licence), one per line, most common first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

/// Shortest accepted password, in characters.
pub const MIN_CHARS: usize = 12;
/// Longest accepted password, in characters.
pub const MAX_CHARS: usize = 256;
/// The refused passwords, lower-case.
fn common_passwords() -> &'static std::collections::HashSet<&'static str> {
    static LIST: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
        std::sync::LazyLock::new(|| include_str!("common_passwords.txt").lines().collect());
    &LIST
}

/// Why a password is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    /// Shorter than [`MIN_CHARS`] or longer than [`MAX_CHARS`].
    #[error("passwords are 12 to 256 characters")]
    Length,
    /// One of the most common passwords, or the e-mail.
    #[error("this password is too common; choose another")]
    Common,
    /// Holds a control character.
    #[error("passwords may not hold control characters")]
    Control,
    /// Guessable: a zxcvbn score below [`MIN_SCORE`] (a word with a digit and a symbol, a
    /// season and a year, a keyboard walk…).
    #[error("this password is too easy to guess; a few unrelated words make a strong one")]
    Weak,
}

/// The lowest zxcvbn score accepted (0–4): 4, at least 10^10 guesses. Score 3 (10^8) still
/// admits a capitalised season, a year and two symbols (`Winter2026!!`), the shape every
/// password-spraying list tries first.
pub const MIN_SCORE: u8 = 4;

/// Checks the policy for `password` of the user with `email`.
pub fn check_policy(password: &str, email: &str) -> Result<(), PasswordProblem> {
    let chars = password.chars().count();
    if !(MIN_CHARS..=MAX_CHARS).contains(&chars) {
        return Err(PasswordProblem::Length);
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordProblem::Control);
    }
    let lower = password.to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if lower == email || lower == local {
        return Err(PasswordProblem::Common);
    }
    let common = common_passwords().contains(lower.as_str());
    if common {
        return Err(PasswordProblem::Common);
    }
    // The person's own words: the e-mail, its local part and domain pieces, the product.
    let mut inputs: Vec<&str> = vec![email, local, "tokenhub", "token", "hub"];
    inputs.extend(email.split(['@', '.', '-', '_', '+']).filter(|p| p.len() > 2));
    if u8::from(zxcvbn::zxcvbn(password, &inputs).score()) < MIN_SCORE {
        return Err(PasswordProblem::Weak);
    }
    Ok(())
}

/// Hashes and verifies passwords with argon2id, a few at a time.
///
/// Only real accounts spend argon2: a sign-in for an unknown e-mail waits as long as a real
/// check takes (the running average of the real ones, queueing included) without computing
/// anything, so anonymous junk from many addresses cannot exhaust the slots that real
/// sign-ins need. A real check waits up to [`SLOT_WAIT`] for a slot before 503.
#[derive(Clone)]
pub struct Passwords {
    slots: Arc<Semaphore>,
    /// Running average of a real verification, in microseconds (queueing included).
    typical_us: Arc<AtomicU64>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords")
    }
}

/// The argon2 slots stayed busy for [`SLOT_WAIT`] (503 `authentication_busy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once")]
pub struct Busy;

/// argon2 computations at a time.
pub const SLOTS: usize = 4;
/// How long a real check waits for a slot.
pub const SLOT_WAIT: Duration = Duration::from_millis(1500);

fn hash_now(password: &[u8]) -> String {
    // argon2 0.6 draws a random salt itself.
    Argon2::default().hash_password(password).map(|h| h.to_string()).unwrap_or_default()
}

fn verify_now(password: &[u8], phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password, &h).is_ok())
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

impl Passwords {
    /// [`SLOTS`] argon2 computations at a time; the typical check is measured once here.
    pub fn new() -> Self {
        let sample = hash_now(crate::crypto::random_alphanumeric(32).as_bytes());
        let started = Instant::now();
        verify_now(b"not the sample", &sample);
        let typical_us = started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        Self { slots: Arc::new(Semaphore::new(SLOTS)), typical_us: Arc::new(AtomicU64::new(typical_us)) }
    }

    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Busy> {
        match tokio::time::timeout(SLOT_WAIT, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Busy),
        }
    }

    /// The argon2id PHC string of `password`.
    pub async fn hash(&self, password: &str) -> Result<String, Busy> {
        let _slot = self.slot().await?;
        let password = password.as_bytes().to_vec();
        tokio::task::spawn_blocking(move || hash_now(&password)).await.map_err(|_| Busy)
    }

    /// True when `password` matches `phc`; with `None` (no such user) answers false after as
    /// long as a real check takes, computing nothing.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, Busy> {
        let started = Instant::now();
        let Some(phc) = phc.map(str::to_string) else {
            let typical = self.typical_us.load(Ordering::Relaxed);
            // A little jitter, as real checks have.
            let jitter = rand::random_range(0..=typical / 20 + 1);
            tokio::time::sleep(Duration::from_micros(typical + jitter)).await;
            return Ok(false);
        };
        let _slot = self.slot().await?;
        let password = password.as_bytes().to_vec();
        let ok = tokio::task::spawn_blocking(move || verify_now(&password, &phc)).await.map_err(|_| Busy)?;
        let took = started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        // Running average over about the last eight checks.
        let _ = self
            .typical_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |avg| Some((avg * 7 + took) / 8));
        Ok(ok)
    }
}

/// 503 `authentication_busy`: every argon2 slot is taken.
pub fn busy() -> crate::error::Failure {
    crate::error::Failure::new(
        crate::error::Code::AuthenticationBusy,
        "too many sign-ins at once; retry later",
    )
    .retry_after(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_short_common_and_control_passwords() {
        assert_eq!(check_policy("short", "a@b.co"), Err(PasswordProblem::Length));
        assert_eq!(check_policy(&"x".repeat(257), "a@b.co"), Err(PasswordProblem::Length));
        assert_eq!(common_passwords().len(), 10_000, "the whole list ships");
        for common in ["123qweasdzxc", "QWERTY123456", "leavemealone"] {
            assert_eq!(check_policy(common, "a@b.co"), Err(PasswordProblem::Common), "{common}");
        }
        assert_eq!(check_policy("1qaz2wsx3edc", "a@b.co"), Err(PasswordProblem::Common));
        assert_eq!(check_policy("ada.lovelace", "ada.lovelace@example.com"), Err(PasswordProblem::Common));
        assert_eq!(check_policy("correct\u{0}horse battery", "a@b.co"), Err(PasswordProblem::Control));
        assert_eq!(check_policy("correct horse battery staple", "a@b.co"), Ok(()));
    }

    #[test]
    fn guessable_passwords_are_refused_by_their_strength_not_a_list() {
        for weak in [
            "password1234",
            "Winter2026!!",
            "Summer2025!!",
            "Tokenhub2026!",
            "ada.lovelace99",
            "qwertyuiop12",
            "aaaaaaaaaaaa",
        ] {
            assert_eq!(check_policy(weak, "ada.lovelace@example.com"), Err(PasswordProblem::Weak), "{weak}");
        }
        for strong in ["correct horse battery staple", "vivid-otter-quarry-lamp", "Xk#9v!Lq2@wZ"] {
            assert_eq!(check_policy(strong, "ada.lovelace@example.com"), Ok(()), "{strong}");
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_do() {
        let p = Passwords::new();
        let h = p.hash("correct horse battery staple").await.unwrap_or_default();
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(p.verify("correct horse battery staple", Some(&h)).await, Ok(true));
        assert_eq!(p.verify("wrong horse battery staple", Some(&h)).await, Ok(false));
        assert_eq!(p.verify("correct horse battery staple", None).await, Ok(false));
    }
}
