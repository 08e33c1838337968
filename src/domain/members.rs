//! Capsule membership. Adding someone is an invitation: it gives no rights and does
//! not show among their capsules until they accept it (`capsules_accept`), so nobody
//! can fill another principal's capsule list. A capsule holds at most `MAX_MEMBERS`
//! members and invitations together.
//!
//! Role changes and removals take effect at once: a member who can no longer write
//! has their open upload sessions in the capsule aborted (their reservations freed),
//! and every later call is checked against the new role.

use candid::Principal;
use ic_stable_structures::Memory;

use super::access::capsule_not_found;
use super::pages::{collect_page, invitation_size};
use super::records::{CapsuleRecord, MAX_LIVE_SESSIONS_LIMIT, MAX_MEMBERS};
use super::{Ctx, State};
use crate::api::{Capsule, Error, Invitation, InvitationPage, Member, Result, Role};
use crate::storage::{Cbor, MemberKey, OwnerSessionKey};

impl<M: Memory + Clone> State<M> {
    /// Owners (and controllers) change a member's role, or invite a principal who is
    /// not a member yet. The last owner cannot be demoted.
    pub fn capsules_set_member(&mut self, ctx: &Ctx, id: u64, who: Principal, role: Role) -> Result<Capsule> {
        let mut c = self.require_role(ctx, id, Role::Owner)?;
        if who == Principal::anonymous() {
            return Err(Error::InvalidArgument("the anonymous principal cannot be a member".into()));
        }
        if c.role_of(&who).is_some() {
            if role != Role::Owner && c.owners == [who] {
                return Err(Error::Conflict(format!("{who} is the last owner of capsule {id}; add another owner first")));
            }
            remove_from(&mut c, &who);
            add_to(&mut c, who, role);
            self.st.members.insert(MemberKey { principal: who, capsule_id: id }, role as u8);
            self.st.capsules.insert(id, Cbor(c.clone()));
            if role < Role::Writer {
                self.revoke_uploads(ctx, id, who);
            }
            return Ok(self.capsule_view(ctx, c));
        }
        let full = c.member_count() >= MAX_MEMBERS;
        match c.invited.iter_mut().find(|m| m.principal == who) {
            Some(m) => m.role = role,
            None if full => {
                return Err(Error::QuotaExceeded(format!(
                    "capsule {id} has {MAX_MEMBERS} members and invitations, the most it may have"
                )))
            }
            None => c.invited.push(Member { principal: who, role }),
        }
        self.st.invitations.insert(MemberKey { principal: who, capsule_id: id }, role as u8);
        self.st.capsules.insert(id, Cbor(c.clone()));
        Ok(self.capsule_view(ctx, c))
    }

    /// The invitee joins with the role they were invited with.
    pub fn capsules_accept(&mut self, ctx: &Ctx, id: u64) -> Result<Capsule> {
        let mut c = self.capsule(id)?;
        if c.role_of(&ctx.caller).is_some() {
            return Ok(self.capsule_view(ctx, c));
        }
        let Some(pos) = c.invited.iter().position(|m| m.principal == ctx.caller) else {
            // Not invited answers like a capsule that does not exist.
            return Err(capsule_not_found(id));
        };
        let m = c.invited.remove(pos);
        add_to(&mut c, m.principal, m.role);
        let key = MemberKey { principal: ctx.caller, capsule_id: id };
        self.st.invitations.remove(&key);
        self.st.members.insert(key, m.role as u8);
        self.st.capsules.insert(id, Cbor(c.clone()));
        Ok(self.capsule_view(ctx, c))
    }

    /// Owners remove a member or withdraw an invitation; anyone may leave a capsule or
    /// decline an invitation. The last owner cannot be removed.
    pub fn capsules_remove_member(&mut self, ctx: &Ctx, id: u64, who: Principal) -> Result<Capsule> {
        let mut c = if who == ctx.caller && self.is_invited(id, who) {
            self.capsule(id)?
        } else {
            let min = if who == ctx.caller { Role::Reader } else { Role::Owner };
            self.require_role(ctx, id, min)?
        };
        let key = MemberKey { principal: who, capsule_id: id };
        if let Some(pos) = c.invited.iter().position(|m| m.principal == who) {
            c.invited.remove(pos);
            self.st.invitations.remove(&key);
            self.st.capsules.insert(id, Cbor(c.clone()));
            return Ok(self.capsule_view(ctx, c));
        }
        if c.role_of(&who).is_none() {
            return Err(Error::NotFound(format!("{who} is not a member of capsule {id}")));
        }
        if c.owners == [who] {
            return Err(Error::Conflict(format!("{who} is the last owner of capsule {id}; it cannot be removed")));
        }
        remove_from(&mut c, &who);
        self.st.members.remove(&key);
        self.st.capsules.insert(id, Cbor(c.clone()));
        self.revoke_uploads(ctx, id, who);
        Ok(self.capsule_view(ctx, c))
    }

    /// The caller's pending invitations, by capsule id.
    pub fn capsules_invitations(&self, ctx: &Ctx, cursor: Option<u64>, limit: u32) -> InvitationPage {
        let from = MemberKey { principal: ctx.caller, capsule_id: cursor.map_or(0, |c| c.saturating_add(1)) };
        let to = MemberKey { principal: ctx.caller, capsule_id: u64::MAX };
        let keys = self.st.invitations.range(from..=to).map(|e| e.key().capsule_id);
        let load = |id: u64| {
            let c = self.st.capsules.get(&id)?.0;
            let role = c.invited.iter().find(|m| m.principal == ctx.caller)?.role;
            Some(Invitation { capsule_id: id, capsule_name: c.name, role })
        };
        let (invitations, next_cursor) = collect_page(keys, limit, load, |i| invitation_size(&i.capsule_name), |i| i);
        InvitationPage { invitations, next_cursor }
    }

    fn is_invited(&self, id: u64, who: Principal) -> bool {
        self.st.invitations.contains_key(&MemberKey { principal: who, capsule_id: id })
    }

    /// `who` can no longer write in capsule `id`: their open sessions there end now.
    fn revoke_uploads(&mut self, ctx: &Ctx, id: u64, who: Principal) {
        let from = OwnerSessionKey { owner: who, session_id: 0 };
        let to = OwnerSessionKey { owner: who, session_id: u64::MAX };
        let open: Vec<u64> = self
            .st
            .owner_sessions
            .range(from..=to)
            .take(2 * MAX_LIVE_SESSIONS_LIMIT as usize)
            .map(|e| e.key().session_id)
            .collect();
        for sid in open {
            let Some(mut rec) = self.st.sessions.get(&sid).map(|r| r.0) else { continue };
            if rec.capsule_id == id {
                self.abort_open_session(&mut rec, ctx.now);
            }
        }
    }

    pub(crate) fn capsule_view(&self, ctx: &Ctx, c: CapsuleRecord) -> Capsule {
        Capsule {
            my_role: self.role(ctx, &c),
            id: c.id,
            name: c.name,
            owners: c.owners,
            writers: c.writers,
            readers: c.readers,
            created_at_ns: c.created_at_ns,
            bytes_used: c.bytes_used,
            reserved_bytes: Some(c.reserved_bytes),
            invited: Some(c.invited),
        }
    }
}

fn remove_from(c: &mut CapsuleRecord, who: &Principal) {
    c.owners.retain(|p| p != who);
    c.writers.retain(|p| p != who);
    c.readers.retain(|p| p != who);
}

fn add_to(c: &mut CapsuleRecord, who: Principal, role: Role) {
    match role {
        Role::Owner => c.owners.push(who),
        Role::Writer => c.writers.push(who),
        Role::Reader => c.readers.push(who),
    }
}
