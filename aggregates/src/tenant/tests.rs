//! Given/when/then tests for every tenant command, accepted and refused.

use cqrs_es::test::TestFramework;
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;

type Framework = TestFramework<Tenant>;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
const T1: OffsetDateTime = datetime!(2026-01-02 00:00 UTC);

fn create_command(name: &str) -> TenantCommand {
    TenantCommand::Create {
        tenant_id: "ten_abcdefghij0123456789".into(),
        name: name.into(),
        plan: Plan::Pro,
        region: "eu-west-1".into(),
        limits: TenantLimits::default(),
        at: T0,
    }
}

fn created() -> TenantEvent {
    TenantEvent::Created {
        tenant_id: "ten_abcdefghij0123456789".into(),
        name: "MyCompany".into(),
        plan: Plan::Pro,
        region: "eu-west-1".into(),
        limits: TenantLimits::default(),
        created_at: T0,
    }
}

fn suspended() -> TenantEvent {
    TenantEvent::Suspended { reason: None, suspended_at: T1 }
}

#[test]
fn create_new_tenant_emits_created() {
    Framework::with(())
        .given_no_previous_events()
        .when(create_command("MyCompany"))
        .then_expect_events(vec![created()]);
}

#[test]
fn create_trims_the_name() {
    Framework::with(())
        .given_no_previous_events()
        .when(create_command("  MyCompany "))
        .then_expect_events(vec![created()]);
}

#[test]
fn create_when_exists_fails() {
    Framework::with(())
        .given(vec![created()])
        .when(create_command("MyCompany"))
        .then_expect_error(TenantError::AlreadyExists);
}

#[test]
fn create_with_blank_name_fails() {
    Framework::with(())
        .given_no_previous_events()
        .when(create_command("   "))
        .then_expect_error(TenantError::InvalidName);
}

#[test]
fn create_with_control_characters_fails() {
    Framework::with(())
        .given_no_previous_events()
        .when(create_command("a\u{0}b"))
        .then_expect_error(TenantError::InvalidName);
}

#[test]
fn create_with_overlong_name_fails() {
    let name = "x".repeat(MAX_NAME_CHARS_FOR_TEST + 1);
    Framework::with(())
        .given_no_previous_events()
        .when(create_command(&name))
        .then_expect_error(TenantError::InvalidName);
}

const MAX_NAME_CHARS_FOR_TEST: usize = super::aggregate::MAX_NAME_CHARS;

#[test]
fn create_with_bad_region_fails() {
    let TenantCommand::Create { tenant_id, name, plan, limits, at, .. } = create_command("A") else {
        unreachable!("create_command builds a Create")
    };
    let command = TenantCommand::Create { tenant_id, name, plan, region: "EU West".into(), limits, at };
    Framework::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(TenantError::InvalidRegion);
}

#[test]
fn create_with_zero_rate_limit_fails() {
    let TenantCommand::Create { tenant_id, name, plan, region, at, .. } = create_command("A") else {
        unreachable!("create_command builds a Create")
    };
    let limits = TenantLimits { requests_per_minute: Some(0), ..Default::default() };
    let command = TenantCommand::Create { tenant_id, name, plan, region, limits, at };
    Framework::with(())
        .given_no_previous_events()
        .when(command)
        .then_expect_error(TenantError::InvalidLimits("requests_per_minute must be at least 1"));
}

#[test]
fn update_sets_only_given_fields_and_merges_limits() {
    let first = TenantLimits { max_api_keys: Some(7), ..Default::default() };
    let given =
        vec![created(), TenantEvent::Updated { name: None, plan: None, limits: Some(first), updated_at: T0 }];
    let more = TenantLimits { requests_per_minute: Some(99), ..Default::default() };
    Framework::with(())
        .given(given)
        .when(TenantCommand::Update { name: Some("New".into()), plan: None, limits: Some(more), at: T1 })
        .then_expect_events(vec![TenantEvent::Updated {
            name: Some("New".into()),
            plan: None,
            limits: Some(TenantLimits {
                max_api_keys: Some(7),
                requests_per_minute: Some(99),
                ..Default::default()
            }),
            updated_at: T1,
        }]);
}

#[test]
fn update_with_nothing_fails() {
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::Update { name: None, plan: None, limits: None, at: T1 })
        .then_expect_error(TenantError::EmptyUpdate);
}

#[test]
fn update_unknown_tenant_fails() {
    Framework::with(())
        .given_no_previous_events()
        .when(TenantCommand::Update { name: Some("x".into()), plan: None, limits: None, at: T1 })
        .then_expect_error(TenantError::NotFound);
}

#[test]
fn update_with_bad_name_fails() {
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::Update { name: Some("".into()), plan: None, limits: None, at: T1 })
        .then_expect_error(TenantError::InvalidName);
}

#[test]
fn suspend_active_tenant_emits_suspended() {
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::Suspend { reason: None, at: T1 })
        .then_expect_events(vec![suspended()]);
}

#[test]
fn suspend_when_already_suspended_fails() {
    Framework::with(())
        .given(vec![created(), suspended()])
        .when(TenantCommand::Suspend { reason: None, at: T1 })
        .then_expect_error(TenantError::AlreadySuspended);
}

#[test]
fn reactivate_suspended_tenant_emits_reactivated() {
    Framework::with(())
        .given(vec![created(), suspended()])
        .when(TenantCommand::Reactivate { at: T1 })
        .then_expect_events(vec![TenantEvent::Reactivated { reactivated_at: T1 }]);
}

#[test]
fn reactivate_active_tenant_fails() {
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::Reactivate { at: T1 })
        .then_expect_error(TenantError::NotSuspended);
}

#[test]
fn delete_emits_deleted() {
    Framework::with(())
        .given(vec![created(), suspended()])
        .when(TenantCommand::Delete { at: T1 })
        .then_expect_events(vec![TenantEvent::Deleted { deleted_at: T1 }]);
}

#[test]
fn any_command_after_delete_fails() {
    let deleted = TenantEvent::Deleted { deleted_at: T1 };
    for command in [
        TenantCommand::Delete { at: T1 },
        TenantCommand::Suspend { reason: None, at: T1 },
        TenantCommand::Reactivate { at: T1 },
        TenantCommand::Update { name: Some("x".into()), plan: None, limits: None, at: T1 },
    ] {
        Framework::with(())
            .given(vec![created(), deleted.clone()])
            .when(command)
            .then_expect_error(TenantError::Deleted);
    }
}

#[test]
fn effective_limits_are_plan_defaults_with_overrides() {
    let mut tenant = Tenant::default();
    cqrs_es::Aggregate::apply(&mut tenant, created());
    assert_eq!(tenant.effective_limits(), Plan::Pro.default_limits());
    cqrs_es::Aggregate::apply(
        &mut tenant,
        TenantEvent::Updated {
            name: None,
            plan: Some(Plan::Free),
            limits: Some(TenantLimits { max_api_keys: Some(1), ..Default::default() }),
            updated_at: T1,
        },
    );
    assert_eq!(tenant.effective_limits().max_api_keys, Some(1));
    assert_eq!(
        tenant.effective_limits().requests_per_minute,
        Plan::Free.default_limits().requests_per_minute
    );
}

#[test]
fn event_wire_shape_is_stable() {
    let json = serde_json::to_value(created()).unwrap_or_default();
    assert_eq!(json["type"], "tenant.created");
    assert_eq!(json["created_at"], "2026-01-01T00:00:00Z");
    assert_eq!(json["plan"], "pro");
    let back: TenantEvent = serde_json::from_value(json).unwrap_or(suspended());
    assert_eq!(back, created());
}

#[test]
fn configure_rbac_fills_unset_fields_from_the_current_settings() {
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::ConfigureRbac { enabled: Some(true), default_role: None, at: T1 })
        .then_expect_events(vec![TenantEvent::RbacConfigured {
            enabled: true,
            default_role: "viewer".into(),
            configured_at: T1,
        }]);
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::ConfigureRbac { enabled: None, default_role: None, at: T1 })
        .then_expect_error(TenantError::EmptyUpdate);
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::ConfigureRbac { enabled: None, default_role: Some("Bad Role".into()), at: T1 })
        .then_expect_error(TenantError::InvalidRole);
}

#[test]
fn set_ip_allowlist_normalises_and_refuses_bad_networks() {
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::SetIpAllowlist {
            enabled: true,
            allowed_ips: vec!["203.0.113.9/24".into(), "2001:db8::1".into()],
            at: T1,
        })
        .then_expect_events(vec![TenantEvent::IpAllowlistSet {
            enabled: true,
            allowed_ips: vec!["203.0.113.0/24".into(), "2001:db8::1/128".into()],
            set_at: T1,
        }]);
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::SetIpAllowlist {
            enabled: true,
            allowed_ips: vec!["10.0.0.0/33".into()],
            at: T1,
        })
        .then_expect_error(TenantError::InvalidCidr("10.0.0.0/33".into()));
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::SetIpAllowlist { enabled: true, allowed_ips: vec![], at: T1 })
        .then_expect_error(TenantError::EmptyAllowlist);
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::SetIpAllowlist { enabled: false, allowed_ips: vec![], at: T1 })
        .then_expect_events(vec![TenantEvent::IpAllowlistSet {
            enabled: false,
            allowed_ips: vec![],
            set_at: T1,
        }]);
}

#[test]
fn save_config_versions_and_refuses_invalid_documents() {
    let config = serde_json::json!({"cache": {"enabled": true}});
    let saved = |version| TenantEvent::ConfigSaved { version, config: config.clone(), saved_at: T1 };
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::SaveConfig {
            config: config.clone(),
            secrets: vec![],
            allow_private_webhooks: false,
            at: T1,
        })
        .then_expect_events(vec![saved(1)]);
    Framework::with(())
        .given(vec![created(), saved(1)])
        .when(TenantCommand::SaveConfig {
            config: config.clone(),
            secrets: vec![],
            allow_private_webhooks: false,
            at: T1,
        })
        .then_expect_events(vec![saved(2)]);
    Framework::with(())
        .given(vec![created()])
        .when(TenantCommand::SaveConfig {
            config: serde_json::json!({"cache": {"enabled": 1}}),
            secrets: vec![],
            allow_private_webhooks: false,
            at: T1,
        })
        .then_expect_error(TenantError::InvalidConfig("$.cache.enabled: must be true or false".into()));
}
