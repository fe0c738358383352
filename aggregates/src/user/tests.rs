//! Given/when/then tests for every user command and rule, and a property test: whatever the
//! order of sign-ins, no TOTP step is ever accepted twice and no recovery code twice.

use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use proptest::prelude::*;
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;

type Framework = TestFramework<User>;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
const EXPIRES: OffsetDateTime = datetime!(2026-01-04 00:00 UTC);
const TENANT: &str = "ten_abcdefghij0123456789";

fn tenant_admin() -> Membership {
    Membership::Tenant { tenant_id: TENANT.into(), role: "tenant_admin".into() }
}

fn invite(email: &str, membership: Membership) -> UserCommand {
    UserCommand::Invite {
        user_id: "usr_abcdefghij0123456789".into(),
        email: email.into(),
        membership,
        invite_token_hash: "tok-hash".into(),
        invite_expires_at: EXPIRES,
        at: T0,
    }
}

fn invited() -> UserEvent {
    UserEvent::Invited {
        user_id: "usr_abcdefghij0123456789".into(),
        email: "ada@example.com".into(),
        membership: tenant_admin(),
        invite_token_hash: "tok-hash".into(),
        invite_expires_at: EXPIRES,
        at: T0,
    }
}

fn activated() -> UserEvent {
    UserEvent::Activated { password_hash: Some("$argon2id$…".into()), provider: None, at: T0 }
}

fn enrolled(step: u64) -> UserEvent {
    UserEvent::TotpEnrolled {
        ciphertext: "c".into(),
        nonce: "n".into(),
        step,
        recovery_code_hashes: vec!["r1".into(), "r2".into()],
        at: T0,
    }
}

#[test]
fn an_invite_normalises_the_email_and_checks_the_role() {
    Framework::with(())
        .given_no_previous_events()
        .when(invite(" Ada@Example.COM ", tenant_admin()))
        .then_expect_events(vec![invited()]);
    for bad in ["ada", "ada@localhost", "@example.com", "a da@example.com", "ada@example.com."] {
        Framework::with(())
            .given_no_previous_events()
            .when(invite(bad, tenant_admin()))
            .then_expect_error(UserError::InvalidEmail);
    }
    for membership in [
        Membership::Platform { role: "tenant_admin".into() },
        Membership::Tenant { tenant_id: TENANT.into(), role: "super_admin".into() },
        Membership::Tenant { tenant_id: "nope".into(), role: "tenant_admin".into() },
    ] {
        Framework::with(())
            .given_no_previous_events()
            .when(invite("ada@example.com", membership))
            .then_expect_error(UserError::InvalidRole);
    }
    Framework::with(())
        .given(vec![invited()])
        .when(invite("ada@example.com", tenant_admin()))
        .then_expect_error(UserError::AlreadyExists);
}

#[test]
fn an_invite_is_used_once_and_expires() {
    let accept = |hash: &str, at| UserCommand::AcceptInvite {
        invite_token_hash: hash.into(),
        password_hash: "$argon2id$…".into(),
        at,
    };
    Framework::with(())
        .given(vec![invited()])
        .when(accept("tok-hash", T0))
        .then_expect_events(vec![activated()]);
    Framework::with(())
        .given(vec![invited()])
        .when(accept("other", T0))
        .then_expect_error(UserError::InviteInvalid);
    Framework::with(())
        .given(vec![invited()])
        .when(accept("tok-hash", EXPIRES))
        .then_expect_error(UserError::InviteExpired);
    Framework::with(())
        .given(vec![invited(), activated()])
        .when(accept("tok-hash", T0))
        .then_expect_error(UserError::InviteInvalid);
    Framework::with(())
        .given(vec![invited(), UserEvent::Disabled { at: T0 }])
        .when(accept("tok-hash", T0))
        .then_expect_error(UserError::Disabled);
    Framework::with(())
        .given_no_previous_events()
        .when(accept("tok-hash", T0))
        .then_expect_error(UserError::NotFound);
}

#[test]
fn a_provider_activates_an_invited_account_once_within_the_invite() {
    let by = |at| UserCommand::ActivateByProvider {
        provider: "google".into(),
        invite_token_hash: "tok-hash".into(),
        at,
    };
    // Only through the invite: a provider vouching for the e-mail is not enough.
    Framework::with(())
        .given(vec![invited()])
        .when(UserCommand::ActivateByProvider {
            provider: "google".into(),
            invite_token_hash: "another".into(),
            at: T0,
        })
        .then_expect_error(UserError::InviteInvalid);
    Framework::with(()).given(vec![invited()]).when(by(T0)).then_expect_events(vec![UserEvent::Activated {
        password_hash: None,
        provider: Some("google".into()),
        at: T0,
    }]);
    Framework::with(()).given(vec![invited()]).when(by(EXPIRES)).then_expect_error(UserError::InviteExpired);
    Framework::with(())
        .given(vec![invited(), activated()])
        .when(by(T0))
        .then_expect_error(UserError::InviteInvalid);
    Framework::with(())
        .given(vec![invited(), UserEvent::Disabled { at: T0 }])
        .when(by(T0))
        .then_expect_error(UserError::Disabled);
    Framework::with(()).given_no_previous_events().when(by(T0)).then_expect_error(UserError::NotFound);
}

#[test]
fn an_activation_event_of_before_providers_still_reads() {
    let old = serde_json::json!({"type": "user.activated", "password_hash": "$argon2id$x", "at": "2026-01-01T00:00:00Z"});
    let event: UserEvent = serde_json::from_value(old).unwrap();
    assert_eq!(
        event,
        UserEvent::Activated { password_hash: Some("$argon2id$x".into()), provider: None, at: T0 }
    );
}

#[test]
fn an_invited_or_disabled_user_cannot_sign_in() {
    let sign_in =
        UserCommand::SignIn { method: SignInMethod::Password, step: None, recovery_code_hash: None, at: T0 };
    Framework::with(()).given(vec![invited()]).when(sign_in.clone()).then_expect_error(UserError::NotActive);
    Framework::with(())
        .given(vec![invited(), activated(), UserEvent::Disabled { at: T0 }])
        .when(sign_in.clone())
        .then_expect_error(UserError::Disabled);
    Framework::with(())
        .given(vec![invited(), activated()])
        .when(sign_in)
        .then_expect_events(vec![UserEvent::SignedIn { method: SignInMethod::Password, step: None, at: T0 }]);
}

#[test]
fn with_totp_on_a_password_alone_is_not_enough_and_steps_are_never_reused() {
    let given = vec![invited(), activated(), enrolled(100)];
    let totp = |step| UserCommand::SignIn {
        method: SignInMethod::PasswordTotp,
        step: Some(step),
        recovery_code_hash: None,
        at: T0,
    };
    Framework::with(())
        .given(given.clone())
        .when(UserCommand::SignIn {
            method: SignInMethod::Password,
            step: None,
            recovery_code_hash: None,
            at: T0,
        })
        .then_expect_error(UserError::SecondFactorRequired);
    Framework::with(()).given(given.clone()).when(totp(100)).then_expect_error(UserError::TotpReplayed);
    Framework::with(()).given(given.clone()).when(totp(99)).then_expect_error(UserError::TotpReplayed);
    Framework::with(()).given(given.clone()).when(totp(101)).then_expect_events(vec![UserEvent::SignedIn {
        method: SignInMethod::PasswordTotp,
        step: Some(101),
        at: T0,
    }]);
    Framework::with(())
        .given(given)
        .when(UserCommand::ConfirmTotp {
            ciphertext: "c".into(),
            nonce: "n".into(),
            step: 200,
            recovery_code_hashes: vec![],
            at: T0,
        })
        .then_expect_error(UserError::TotpAlreadyEnrolled);
}

#[test]
fn a_recovery_code_works_once() {
    let given = vec![invited(), activated(), enrolled(100)];
    let recover = |hash: &str| UserCommand::SignIn {
        method: SignInMethod::PasswordRecoveryCode,
        step: None,
        recovery_code_hash: Some(hash.into()),
        at: T0,
    };
    let used = UserEvent::RecoveryCodeUsed { recovery_code_hash: "r1".into(), at: T0 };
    Framework::with(()).given(given.clone()).when(recover("r1")).then_expect_events(vec![used.clone()]);
    let mut after = given.clone();
    after.push(used);
    Framework::with(())
        .given(after.clone())
        .when(recover("r1"))
        .then_expect_error(UserError::RecoveryCodeInvalid);
    Framework::with(())
        .given(after)
        .when(recover("r2"))
        .then_expect_events(vec![UserEvent::RecoveryCodeUsed { recovery_code_hash: "r2".into(), at: T0 }]);
    Framework::with(()).given(given).when(recover("nope")).then_expect_error(UserError::RecoveryCodeInvalid);
}

#[test]
fn removing_totp_or_regenerating_codes_needs_a_fresh_step() {
    let given = vec![invited(), activated(), enrolled(100)];
    Framework::with(())
        .given(given.clone())
        .when(UserCommand::RemoveTotp { step: 100, at: T0 })
        .then_expect_error(UserError::TotpReplayed);
    Framework::with(())
        .given(given.clone())
        .when(UserCommand::RemoveTotp { step: 101, at: T0 })
        .then_expect_events(vec![UserEvent::TotpRemoved { at: T0 }]);
    Framework::with(())
        .given(given)
        .when(UserCommand::RegenerateRecoveryCodes {
            recovery_code_hashes: vec!["x".into()],
            step: 100,
            at: T0,
        })
        .then_expect_error(UserError::TotpReplayed);
    Framework::with(())
        .given(vec![invited(), activated()])
        .when(UserCommand::RemoveTotp { step: 1, at: T0 })
        .then_expect_error(UserError::TotpNotEnrolled);
}

#[test]
fn roles_change_within_the_known_roles_and_disable_is_terminal() {
    let given = vec![invited(), activated()];
    let admin = Membership::Platform { role: "auditor".into() };
    Framework::with(())
        .given(given.clone())
        .when(UserCommand::ChangeRole { membership: admin.clone(), at: T0 })
        .then_expect_events(vec![UserEvent::RoleChanged { membership: admin, at: T0 }]);
    Framework::with(())
        .given(given.clone())
        .when(UserCommand::ChangeRole { membership: Membership::Platform { role: "root".into() }, at: T0 })
        .then_expect_error(UserError::InvalidRole);
    let mut disabled = given;
    disabled.push(UserEvent::Disabled { at: T0 });
    Framework::with(())
        .given(disabled.clone())
        .when(UserCommand::Disable { at: T0 })
        .then_expect_error(UserError::Disabled);
    Framework::with(())
        .given(disabled)
        .when(UserCommand::SetPassword { password_hash: "h".into(), at: T0 })
        .then_expect_error(UserError::Disabled);
}

#[derive(Debug, Clone)]
enum Attempt {
    Totp(u64),
    Recovery(u8),
}

fn attempts() -> impl Strategy<Value = Vec<Attempt>> {
    prop::collection::vec(
        prop_oneof![(95u64..110).prop_map(Attempt::Totp), (0u8..4).prop_map(Attempt::Recovery)],
        0..40,
    )
}

proptest! {
    /// Any sequence of sign-in attempts: every accepted TOTP step is greater than every step
    /// accepted before it (so none is accepted twice), and each recovery code is spent once.
    #[test]
    fn no_second_factor_is_accepted_twice(sequence in attempts()) {
        let mut user = User::default();
        for e in [invited(), activated(), enrolled(100)] { user.apply(e); }
        let (mut accepted_steps, mut spent) = (vec![100u64], Vec::<String>::new());
        for attempt in sequence {
            let command = match &attempt {
                Attempt::Totp(step) => UserCommand::SignIn { method: SignInMethod::PasswordTotp, step: Some(*step), recovery_code_hash: None, at: T0 },
                Attempt::Recovery(i) => UserCommand::SignIn { method: SignInMethod::PasswordRecoveryCode, step: None, recovery_code_hash: Some(format!("r{i}")), at: T0 },
            };
            if let Ok(event) = user.decide(command) {
                match &event {
                    UserEvent::SignedIn { step: Some(step), .. } => {
                        prop_assert!(accepted_steps.iter().all(|s| step > s));
                        accepted_steps.push(*step);
                    }
                    UserEvent::RecoveryCodeUsed { recovery_code_hash, .. } => {
                        prop_assert!(!spent.contains(recovery_code_hash));
                        prop_assert!(recovery_code_hash == "r1" || recovery_code_hash == "r2");
                        spent.push(recovery_code_hash.clone());
                    }
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
                user.apply(event);
            }
        }
    }
}

#[test]
fn an_identity_is_linked_once_to_an_active_account() {
    let link = || UserCommand::LinkIdentity {
        provider: "google".into(),
        issuer: "https://accounts.google.com".into(),
        subject: "1234".into(),
        at: T0,
    };
    let linked = UserEvent::IdentityLinked {
        provider: "google".into(),
        issuer: "https://accounts.google.com".into(),
        subject: "1234".into(),
        at: T0,
    };
    Framework::with(())
        .given(vec![invited(), activated()])
        .when(link())
        .then_expect_events(vec![linked.clone()]);
    Framework::with(())
        .given(vec![invited(), activated(), linked])
        .when(link())
        .then_expect_error(UserError::IdentityAlreadyLinked);
    Framework::with(()).given(vec![invited()]).when(link()).then_expect_error(UserError::NotActive);
    Framework::with(())
        .given(vec![invited(), activated()])
        .when(UserCommand::LinkIdentity {
            provider: "g".into(),
            issuer: String::new(),
            subject: "1".into(),
            at: T0,
        })
        .then_expect_error(UserError::InvalidIdentity);
}
