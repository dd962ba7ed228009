//! Approval policies: an environment with a policy is protected — its changes go through a
//! change request that enough eligible people approve (Unleash's model: 1–10 approvals, no
//! self-approval unless allowed; approvals expire; editing the change revokes them).
//!
//! This module is pure: who may approve, and how many approvals still count.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use switchyard_platform::auth::{Principal, Role};

use crate::biz::error::{ConfigError, ConfigResult};

/// The most approvals a policy may require.
pub const MAX_REQUIRED: u32 = 10;
/// The most named approvers or roles a policy may list.
pub const MAX_APPROVERS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// Approvals a change needs (1–10).
    pub required: u32,
    /// Roles (`publisher`, `admin`, …) whose holders on the environment may approve.
    pub roles: Vec<String>,
    /// Principals (JWT subjects, `apikey:{id}`) who may approve whatever their role.
    pub principals: Vec<String>,
    /// Whether the author of a change may approve it.
    pub allow_self_approval: bool,
    /// How long an approval counts, in milliseconds; 0: until the change is applied.
    pub approval_ttl_ms: i64,
}

/// One approval of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub approver: String,
    pub comment: String,
    pub decided_ms: i64,
}

impl ApprovalPolicy {
    pub fn validate(&self) -> ConfigResult<()> {
        if !(1..=MAX_REQUIRED).contains(&self.required) {
            return Err(ConfigError::invalid("required_approvals", "between 1 and 10"));
        }
        if self.roles.len() + self.principals.len() > MAX_APPROVERS {
            return Err(ConfigError::invalid(
                "approvers",
                format!("at most {MAX_APPROVERS} roles and principals"),
            ));
        }
        if self.roles.is_empty() && self.principals.is_empty() {
            return Err(ConfigError::invalid(
                "approver_roles",
                "someone must be able to approve: list roles, principals or both",
            ));
        }
        for (index, role) in self.roles.iter().enumerate() {
            let known = Role::from_str(role).is_ok_and(|role| role >= Role::Viewer);
            if !known {
                return Err(ConfigError::invalid(
                    &format!("approver_roles[{index}]"),
                    "viewer, editor, publisher or admin",
                ));
            }
        }
        for (index, principal) in self.principals.iter().enumerate() {
            if principal.is_empty() || principal.len() > 256 || principal.chars().any(char::is_control) {
                return Err(ConfigError::invalid(
                    &format!("approver_principals[{index}]"),
                    "1-256 characters, no control characters",
                ));
            }
        }
        if !(0..=365 * 24 * 3_600_000).contains(&self.approval_ttl_ms) {
            return Err(ConfigError::invalid(
                "approval_ttl",
                "between 0 (no expiry) and 365 days",
            ));
        }
        Ok(())
    }

    /// Whether `principal` may approve a change to `resource` written by `author`.
    pub fn may_approve(&self, principal: &Principal, resource: &str, author: &str) -> Result<(), String> {
        if principal.subject == author && !self.allow_self_approval {
            return Err("the author of a change cannot approve it".to_owned());
        }
        if self.principals.contains(&principal.subject) {
            return Ok(());
        }
        let by_role = self
            .roles
            .iter()
            .filter_map(|role| Role::from_str(role).ok())
            .any(|role| principal.authorize(&principal.tenant, role, resource).is_ok());
        if by_role {
            return Ok(());
        }
        Err(format!(
            "{} is not an approver here (roles: {}; principals: {})",
            principal.subject,
            self.roles.join(", "),
            self.principals.len()
        ))
    }

    /// The approvals that still count at `now_ms`.
    pub fn counting<'a>(&self, approvals: &'a [Approval], now_ms: i64) -> Vec<&'a Approval> {
        approvals
            .iter()
            .filter(|approval| self.approval_ttl_ms == 0 || now_ms < approval.decided_ms + self.approval_ttl_ms)
            .collect()
    }

    /// Whether enough approvals count at `now_ms`.
    pub fn satisfied(&self, approvals: &[Approval], now_ms: i64) -> bool {
        self.counting(approvals, now_ms).len() >= self.required as usize
    }
}

#[cfg(test)]
mod tests {
    use switchyard_platform::auth::{Credential, RoleBinding};

    use super::*;

    fn principal(subject: &str, roles: &[&str]) -> Principal {
        Principal {
            subject: subject.into(),
            tenant: "acme".into(),
            roles: roles.iter().map(|role| RoleBinding::from_str(role).unwrap()).collect(),
            scopes: vec![],
            credential: Credential::ApiKey,
        }
    }

    fn policy() -> ApprovalPolicy {
        ApprovalPolicy {
            required: 2,
            roles: vec!["publisher".into()],
            principals: vec!["alice@shop".into()],
            allow_self_approval: false,
            approval_ttl_ms: 3_600_000,
        }
    }

    const PROD: &str = "projects/shop/environments/prod/configs/checkout";

    #[test]
    fn approvers_by_role_or_name_and_never_the_author() {
        let policy = policy();
        assert!(
            policy
                .may_approve(&principal("bob", &["publisher"]), PROD, "carol")
                .is_ok()
        );
        assert!(
            policy
                .may_approve(&principal("alice@shop", &["viewer"]), PROD, "carol")
                .is_ok()
        );
        assert!(
            policy
                .may_approve(&principal("dave", &["editor"]), PROD, "carol")
                .is_err()
        );
        assert!(
            policy
                .may_approve(&principal("bob", &["publisher:projects/other"]), PROD, "carol")
                .is_err(),
            "a role elsewhere does not count"
        );
        let own = policy
            .may_approve(&principal("carol", &["admin"]), PROD, "carol")
            .unwrap_err();
        assert!(own.contains("author"), "{own}");
        let lenient = ApprovalPolicy {
            allow_self_approval: true,
            ..policy
        };
        assert!(
            lenient
                .may_approve(&principal("carol", &["admin"]), PROD, "carol")
                .is_ok()
        );
    }

    #[test]
    fn approvals_expire() {
        let policy = policy();
        let approvals = [
            Approval {
                approver: "a".into(),
                comment: String::new(),
                decided_ms: 0,
            },
            Approval {
                approver: "b".into(),
                comment: String::new(),
                decided_ms: 1_000_000,
            },
        ];
        assert!(policy.satisfied(&approvals, 3_599_999));
        assert!(!policy.satisfied(&approvals, 3_600_000), "the first one expired");
        let forever = ApprovalPolicy {
            approval_ttl_ms: 0,
            ..policy
        };
        assert!(forever.satisfied(&approvals, i64::MAX / 2));
    }

    #[test]
    fn bad_policies_are_refused() {
        let bad = |policy: ApprovalPolicy, field: &str| {
            let error = policy.validate().unwrap_err().to_string();
            assert!(error.contains(field), "{field}: {error}");
        };
        bad(
            ApprovalPolicy {
                required: 0,
                ..policy()
            },
            "required_approvals",
        );
        bad(
            ApprovalPolicy {
                required: 11,
                ..policy()
            },
            "required_approvals",
        );
        bad(
            ApprovalPolicy {
                roles: vec!["overlord".into()],
                ..policy()
            },
            "approver_roles[0]",
        );
        bad(
            ApprovalPolicy {
                roles: vec![],
                principals: vec![],
                ..policy()
            },
            "approver_roles",
        );
        bad(
            ApprovalPolicy {
                approval_ttl_ms: -1,
                ..policy()
            },
            "approval_ttl",
        );
        policy().validate().unwrap();
    }
}
