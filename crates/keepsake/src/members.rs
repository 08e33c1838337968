//! Capsule membership, as a thin layer over the canister's own methods: one call per
//! command, and the canister's rules decide (who may add, change or remove whom, the last
//! owner, …). Its refusals reach the user unchanged. Adding someone who is not a member
//! yet is an invitation: they join when they accept it (`keepsake capsule accept`).

use anyhow::anyhow;
use backend::api::{Capsule, Member, Role};
use candid::Principal;
use serde::Serialize;

use crate::client::{Client, ClientResult};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Members {
    pub capsule_id: u64,
    pub name: String,
    /// The caller's own role.
    pub my_role: Option<Role>,
    /// Owners, then writers, then readers.
    pub members: Vec<Member>,
    /// Invited, not joined yet (they accept with `keepsake capsule accept`).
    pub invited: Vec<Member>,
}

impl From<Capsule> for Members {
    fn from(c: Capsule) -> Self {
        let with = |ps: Vec<Principal>, role| {
            ps.into_iter().map(move |principal| Member { principal, role })
        };
        let members = with(c.owners, Role::Owner)
            .chain(with(c.writers, Role::Writer))
            .chain(with(c.readers, Role::Reader))
            .collect();
        let invited = c.invited.unwrap_or_default();
        Self {
            capsule_id: c.id,
            name: c.name,
            my_role: c.my_role,
            members,
            invited,
        }
    }
}

pub fn parse_role(s: &str) -> anyhow::Result<Role> {
    match s.to_ascii_lowercase().as_str() {
        "owner" => Ok(Role::Owner),
        "writer" => Ok(Role::Writer),
        "reader" => Ok(Role::Reader),
        _ => Err(anyhow!("unknown role '{s}' (owner, writer, reader)")),
    }
}

pub fn parse_principal(s: &str) -> anyhow::Result<Principal> {
    Principal::from_text(s.trim()).map_err(|e| anyhow!("invalid principal '{s}': {e}"))
}

/// The members of a capsule (any member may look).
pub async fn list(client: &Client, capsule: u64) -> ClientResult<Members> {
    client.capsules_get(capsule).await.map(Members::from)
}

/// Changes a member's role, or invites `who` with `role` (they join when they accept).
pub async fn add(
    client: &Client,
    capsule: u64,
    who: Principal,
    role: Role,
) -> ClientResult<Members> {
    client
        .capsules_set_member(capsule, who, role)
        .await
        .map(Members::from)
}

/// Joins a capsule you were invited to.
pub async fn accept(client: &Client, capsule: u64) -> ClientResult<Members> {
    client.capsules_accept(capsule).await.map(Members::from)
}

/// Removes `who` or withdraws their invitation (yourself: you leave the capsule, or
/// decline the invitation).
pub async fn remove(client: &Client, capsule: u64, who: Principal) -> ClientResult<Members> {
    client
        .capsules_remove_member(capsule, who)
        .await
        .map(Members::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_principals_parse_or_explain() {
        assert_eq!(parse_role("Writer").unwrap(), Role::Writer);
        assert!(parse_role("admin")
            .unwrap_err()
            .to_string()
            .contains("owner, writer, reader"));
        assert_eq!(
            parse_principal(" 2vxsx-fae ").unwrap(),
            Principal::anonymous()
        );
        assert!(parse_principal("nope")
            .unwrap_err()
            .to_string()
            .contains("invalid principal"));
        let c = Capsule {
            id: 3,
            name: "F".into(),
            owners: vec![Principal::from_slice(&[1])],
            writers: vec![Principal::from_slice(&[2])],
            readers: vec![Principal::from_slice(&[3]), Principal::from_slice(&[4])],
            created_at_ns: 0,
            bytes_used: 0,
            my_role: Some(Role::Owner),
            reserved_bytes: Some(0),
            invited: Some(vec![Member {
                principal: Principal::from_slice(&[5]),
                role: Role::Writer,
            }]),
        };
        let m = Members::from(c);
        let roles: Vec<Role> = m.members.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::Owner, Role::Writer, Role::Reader, Role::Reader]
        );
        assert_eq!(
            m.invited,
            [Member {
                principal: Principal::from_slice(&[5]),
                role: Role::Writer
            }]
        );
    }
}
