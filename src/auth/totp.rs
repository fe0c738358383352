//! TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps) through `totp-rs`, and the enrolment
//! material an authenticator app reads: the base32 secret, the `otpauth://` URI and its QR code
//! as SVG. A code is accepted for the current step ±1; the caller refuses a step at or before
//! the last one accepted (replay), which the `User` aggregate keeps.

use qrcode::render::svg;
use qrcode::QrCode;
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Bytes of a new secret (160 bits, the RFC's recommendation for SHA-1).
pub const SECRET_LEN: usize = 20;
/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "TokenHub";

fn totp(secret: &[u8], account: &str) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(ISSUER))
        .with_account_name(account.replace(':', "_"))
        .build()
        .ok()
}

/// A fresh random secret.
pub fn generate_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; SECRET_LEN];
    rand::fill(bytes.as_mut_slice());
    bytes
}

/// The step of unix time `unix_seconds`.
pub fn step_at(unix_seconds: u64) -> u64 {
    unix_seconds / STEP_SECONDS
}

/// The step whose code `code` is, within ±1 step of `unix_seconds`; `None` for a wrong code
/// (or one that is not six digits).
pub fn verify(secret: &[u8], code: &str, unix_seconds: u64) -> Option<u64> {
    totp(secret, "")?.check(code.trim(), unix_seconds)
}

/// The code of `secret` at `unix_seconds` (for tests and the CLI).
pub fn code_at(secret: &[u8], unix_seconds: u64) -> Option<String> {
    Some(totp(secret, "")?.generate(unix_seconds).to_string())
}

/// What an authenticator app needs.
pub struct Enrolment {
    /// The secret in base32 (no padding), for typing in.
    pub secret_base32: String,
    /// `otpauth://totp/TokenHub:<account>?secret=…&issuer=TokenHub…`
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// The enrolment material of `secret` for `account` (the e-mail).
pub fn enrolment(secret: &[u8], account: &str) -> Option<Enrolment> {
    let totp = totp(secret, account)?;
    let otpauth_uri = totp.to_url().ok()?;
    let qr_svg =
        QrCode::new(otpauth_uri.as_bytes()).ok()?.render::<svg::Color<'_>>().min_dimensions(200, 200).build();
    Some(Enrolment { secret_base32: Secret::from(secret.to_vec()).to_base32(), otpauth_uri, qr_svg })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (8-digit codes there; the last six digits are ours).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(secret, time).as_deref(), Some(&code[2..]), "at {time}");
            assert_eq!(verify(secret, &code[2..], time), Some(step_at(time)));
        }
    }

    #[test]
    fn window_is_one_step_each_side() {
        let secret = generate_secret();
        let now = 1_800_000_015;
        for offset in [-1i64, 0, 1] {
            let t = (now as i64 + offset * 30) as u64;
            let code = code_at(&secret, t).unwrap_or_default();
            assert_eq!(verify(&secret, &code, now), Some(step_at(t)), "offset {offset}");
        }
        for offset in [-3i64, -2, 2, 3] {
            let t = (now as i64 + offset * 30) as u64;
            let code = code_at(&secret, t).unwrap_or_default();
            // A code of another step may collide with one in the window by chance (1e-6).
            if (-1..=1).all(|w| code_at(&secret, (now as i64 + w * 30) as u64) != Some(code.clone())) {
                assert_eq!(verify(&secret, &code, now), None, "offset {offset}");
            }
        }
        assert_eq!(verify(&secret, "12345", now), None);
        assert_eq!(verify(&secret, "+12345", now), None);
        assert_eq!(verify(&secret, "１２３４５６", now), None);
    }

    #[test]
    fn enrolment_material() {
        let secret = generate_secret();
        let e = enrolment(&secret, "ada@example.com").unwrap_or_else(|| unreachable!());
        assert_eq!(e.secret_base32.len(), 32);
        assert!(e.otpauth_uri.starts_with("otpauth://totp/TokenHub:ada%40example.com?"), "{}", e.otpauth_uri);
        assert!(e.otpauth_uri.contains(&format!("secret={}", e.secret_base32)));
        assert!(e.qr_svg.contains("<svg"));
    }
}
