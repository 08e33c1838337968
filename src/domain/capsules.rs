//! Capsules: the owner scope of uploads and blobs. (Membership management comes with
//! the memories domain.)

use ic_stable_structures::Memory;

use super::records::{CapsuleRecord, MAX_TEXT_LEN};
use super::{Ctx, State};
use crate::api::{Capsule, CapsuleCreateArgs, ConfigUpdate, Error, Result, Role, UploadConfig};
use crate::storage::{Cbor, MemberKey};
use candid::Principal;

impl<M: Memory + Clone> State<M> {
    pub fn capsules_create(&mut self, ctx: &Ctx, args: CapsuleCreateArgs) -> Result<Capsule> {
        if ctx.caller == Principal::anonymous() {
            return Err(Error::Unauthorized("anonymous callers cannot create capsules".into()));
        }
        let name = args.name.trim();
        if name.is_empty() || name.len() > MAX_TEXT_LEN {
            return Err(Error::InvalidArgument(format!(
                "capsule name must be 1 to {MAX_TEXT_LEN} bytes"
            )));
        }
        let id = self.st.hdr.next_capsule_id;
        self.st.hdr.next_capsule_id += 1;
        let rec = CapsuleRecord {
            id,
            name: name.to_string(),
            owners: vec![ctx.caller],
            writers: vec![],
            readers: vec![],
            created_at_ns: ctx.now,
            bytes_used: 0,
        };
        self.st.capsules.insert(id, Cbor(rec.clone()));
        self.st.members.insert(MemberKey { principal: ctx.caller, capsule_id: id }, Role::Owner as u8);
        self.st.save_header();
        Ok(self.capsule_view(ctx, rec))
    }

    /// Capsules the caller belongs to, by id.
    pub fn capsules_list(&self, ctx: &Ctx) -> Vec<Capsule> {
        let from = MemberKey { principal: ctx.caller, capsule_id: 0 };
        let to = MemberKey { principal: ctx.caller, capsule_id: u64::MAX };
        self.st
            .members
            .range(from..=to)
            .filter_map(|e| self.st.capsules.get(&e.key().capsule_id))
            .map(|c| self.capsule_view(ctx, c.0))
            .collect()
    }

    pub fn capsules_get(&self, ctx: &Ctx, id: u64) -> Result<Capsule> {
        let c = self.require_role(ctx, id, Role::Reader)?;
        Ok(self.capsule_view(ctx, c))
    }

    /// Owners (and controllers) add a member or change a member's role. The last owner
    /// cannot be demoted.
    pub fn capsules_set_member(&mut self, ctx: &Ctx, id: u64, who: Principal, role: Role) -> Result<Capsule> {
        let mut c = self.require_role(ctx, id, Role::Owner)?;
        if who == Principal::anonymous() {
            return Err(Error::InvalidArgument("the anonymous principal cannot be a member".into()));
        }
        if role != Role::Owner && c.owners == [who] {
            return Err(Error::Conflict(format!("{who} is the last owner of capsule {id}; add another owner first")));
        }
        remove_from(&mut c, &who);
        match role {
            Role::Owner => c.owners.push(who),
            Role::Writer => c.writers.push(who),
            Role::Reader => c.readers.push(who),
        }
        self.st.members.insert(MemberKey { principal: who, capsule_id: id }, role as u8);
        self.st.capsules.insert(id, Cbor(c.clone()));
        Ok(self.capsule_view(ctx, c))
    }

    /// Owners remove anyone; any member may leave. The last owner cannot be removed.
    pub fn capsules_remove_member(&mut self, ctx: &Ctx, id: u64, who: Principal) -> Result<Capsule> {
        let min = if who == ctx.caller { Role::Reader } else { Role::Owner };
        let mut c = self.require_role(ctx, id, min)?;
        if c.role_of(&who).is_none() {
            return Err(Error::NotFound(format!("{who} is not a member of capsule {id}")));
        }
        if c.owners == [who] {
            return Err(Error::Conflict(format!("{who} is the last owner of capsule {id}; it cannot be removed")));
        }
        remove_from(&mut c, &who);
        self.st.members.remove(&MemberKey { principal: who, capsule_id: id });
        self.st.capsules.insert(id, Cbor(c.clone()));
        Ok(self.capsule_view(ctx, c))
    }

    /// Controllers change the limits. A refused update changes nothing.
    pub fn admin_set_config(&mut self, ctx: &Ctx, u: ConfigUpdate) -> Result<UploadConfig> {
        if !ctx.is_controller {
            return Err(Error::Unauthorized("only canister controllers can change the configuration".into()));
        }
        let mut cfg = self.st.config();
        if let Some(v) = u.max_file_size {
            cfg.max_file_size = v;
        }
        if let Some(v) = u.max_capsule_bytes {
            cfg.max_capsule_bytes = v;
        }
        if let Some(v) = u.max_live_sessions_per_caller {
            cfg.max_live_sessions_per_caller = v;
        }
        if let Some(v) = u.session_ttl_ns {
            cfg.session_ttl_ns = v;
        }
        if cfg.max_file_size == 0 || cfg.max_live_sessions_per_caller == 0 || cfg.session_ttl_ns < 60_000_000_000 {
            return Err(Error::InvalidArgument(
                "max_file_size and max_live_sessions_per_caller must be > 0, session_ttl_ns at least 60 s".into(),
            ));
        }
        self.st.set_config(cfg.clone());
        Ok(cfg.view())
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
            reserved_bytes: None,
            invited: None,
        }
    }
}

fn remove_from(c: &mut CapsuleRecord, who: &Principal) {
    c.owners.retain(|p| p != who);
    c.writers.retain(|p| p != who);
    c.readers.retain(|p| p != who);
}
