//! Capsules: the owner scope of uploads and blobs. (Membership management comes with
//! the memories domain.)

use ic_stable_structures::Memory;

use super::records::{CapsuleRecord, MAX_TEXT_LEN};
use super::{Ctx, State};
use crate::api::{Capsule, CapsuleCreateArgs, Error, Result, Role};
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
        }
    }
}
