//! Why an authorization said no.

/// Why [`authorize`](super::authorize::authorize) (or [`Principal::may_act_for`](super::Principal::may_act_for)) said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The principal may not perform the action.
    #[error("this principal may not perform this action")]
    Forbidden,
    /// A platform key bound to tenants named another one.
    #[error("this platform key is not bound to that tenant")]
    TenantNotAllowed,
}

impl From<Denied> for crate::error::Failure {
    fn from(e: Denied) -> Self {
        let code = match e {
            Denied::Forbidden => crate::error::Code::Forbidden,
            Denied::TenantNotAllowed => crate::error::Code::TenantNotAllowed,
        };
        Self::new(code, e.to_string())
    }
}
