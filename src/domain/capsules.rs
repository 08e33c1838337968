//! Capsules: the owner scope of uploads, blobs and memories. (Membership is in
//! `members.rs`.)

use ic_stable_structures::Memory;

use super::pages::{capsule_size, collect_page};
use super::quota::validate_config;
use super::records::{CapsuleRecord, MAX_TEXT_LEN};
use super::{Ctx, State};
use crate::api::{Capsule, CapsuleCreateArgs, CapsulePage, ConfigUpdate, DirectoryCapsuleArgs, Error, Result, Role, UploadConfig};
use crate::storage::{Cbor, MemberKey};
use candid::Principal;

impl<M: Memory + Clone> State<M> {
    pub fn capsules_create(&mut self, ctx: &Ctx, args: CapsuleCreateArgs) -> Result<Capsule> {
        if ctx.caller == Principal::anonymous() {
            return Err(Error::Unauthorized("anonymous callers cannot create capsules".into()));
        }
        let name = capsule_name(&args.name)?;
        if let Some(d) = self.st.config().directory {
            return Err(Error::Unauthorized(format!(
                "this storage canister's capsules are created through its directory {d}: call capsules_create there"
            )));
        }
        self.check_capsule_create(ctx)?;
        let id = self.st.hdr.next_capsule_id;
        self.st.hdr.next_capsule_id += 1;
        Ok(self.insert_capsule(ctx, id, name))
    }

    /// Directory mode: the directory creates `args.owner`'s capsule with the id it
    /// chose. Idempotent: the same id, owner and name again return the capsule (the
    /// directory retries after a lost reply); anything else with that id is a conflict.
    pub fn directory_capsules_create(&mut self, ctx: &Ctx, args: DirectoryCapsuleArgs) -> Result<Capsule> {
        match self.st.config().directory {
            Some(d) if d == ctx.caller => {}
            Some(d) => return Err(Error::Unauthorized(format!("only the directory {d} creates capsules here"))),
            None => return Err(Error::Unauthorized("this canister is not in directory mode".into())),
        }
        if args.owner == Principal::anonymous() {
            return Err(Error::InvalidArgument("a capsule's owner cannot be the anonymous principal".into()));
        }
        let name = capsule_name(&args.name)?;
        if args.id == 0 || args.id == u64::MAX {
            return Err(Error::InvalidArgument("capsule id must be 1 to 2^64-2".into()));
        }
        let owner_ctx = Ctx { caller: args.owner, now: ctx.now, is_controller: false };
        if let Some(c) = self.st.capsules.get(&args.id).map(|c| c.0) {
            if c.created_by == Some(args.owner) && c.name == name {
                return Ok(self.capsule_view(&owner_ctx, c));
            }
            return Err(Error::Conflict(format!("capsule {} already exists here", args.id)));
        }
        // The directory places by room and bounds capsules per owner; the canister's
        // own capsule limit still holds.
        self.check_capsule_count()?;
        self.st.hdr.next_capsule_id = self.st.hdr.next_capsule_id.max(args.id + 1);
        Ok(self.insert_capsule(&owner_ctx, args.id, name))
    }

    fn insert_capsule(&mut self, ctx: &Ctx, id: u64, name: &str) -> Capsule {
        let rec = CapsuleRecord {
            id,
            name: name.to_string(),
            owners: vec![ctx.caller],
            writers: vec![],
            readers: vec![],
            created_at_ns: ctx.now,
            bytes_used: 0,
            reserved_bytes: 0,
            invited: vec![],
            created_by: Some(ctx.caller),
            memory_count: Some(0),
        };
        self.st.capsules.insert(id, Cbor(rec.clone()));
        self.st.members.insert(MemberKey { principal: ctx.caller, capsule_id: id }, Role::Owner as u8);
        self.count_capsule_created(ctx.caller);
        self.st.save_header();
        self.capsule_view(ctx, rec)
    }

    /// The first page of the capsules the caller belongs to (`capsules_page` has them
    /// all).
    pub fn capsules_list(&self, ctx: &Ctx) -> Vec<Capsule> {
        self.capsules_page(ctx, None, 0).capsules
    }

    /// Capsules the caller belongs to, by id, page by page.
    pub fn capsules_page(&self, ctx: &Ctx, cursor: Option<u64>, limit: u32) -> CapsulePage {
        let from = MemberKey { principal: ctx.caller, capsule_id: cursor.map_or(0, |c| c.saturating_add(1)) };
        let to = MemberKey { principal: ctx.caller, capsule_id: u64::MAX };
        let ids = self.st.members.range(from..=to).map(|e| e.key().capsule_id);
        let (capsules, next_cursor) = collect_page(
            ids,
            limit,
            |id| self.st.capsules.get(&id).map(|c| c.0),
            capsule_size,
            |c| self.capsule_view(ctx, c),
        );
        CapsulePage { capsules, next_cursor }
    }

    pub fn capsules_get(&self, ctx: &Ctx, id: u64) -> Result<Capsule> {
        let c = self.require_role(ctx, id, Role::Reader)?;
        Ok(self.capsule_view(ctx, c))
    }

    /// Controllers change the limits. A refused update changes nothing.
    pub fn admin_set_config(&mut self, ctx: &Ctx, u: ConfigUpdate) -> Result<UploadConfig> {
        if !ctx.is_controller {
            return Err(Error::Unauthorized("only canister controllers can change the configuration".into()));
        }
        let mut cfg = self.st.config();
        let ConfigUpdate {
            max_file_size,
            max_capsule_bytes,
            max_live_sessions_per_caller,
            session_ttl_ns,
            max_capsules_per_caller,
            max_capsules,
            max_stored_bytes,
            directory,
            max_memories_per_capsule,
            max_session_records_per_caller,
        } = u;
        set(&mut cfg.max_file_size, max_file_size);
        set(&mut cfg.max_capsule_bytes, max_capsule_bytes);
        set(&mut cfg.max_live_sessions_per_caller, max_live_sessions_per_caller);
        set(&mut cfg.session_ttl_ns, session_ttl_ns);
        set(&mut cfg.max_capsules_per_caller, max_capsules_per_caller);
        set(&mut cfg.max_capsules, max_capsules);
        set(&mut cfg.max_stored_bytes, max_stored_bytes);
        set(&mut cfg.max_memories_per_capsule, max_memories_per_capsule);
        set(&mut cfg.max_session_records_per_caller, max_session_records_per_caller);
        if let Some(d) = directory {
            if d == Principal::anonymous() {
                return Err(Error::InvalidArgument("the directory cannot be the anonymous principal".into()));
            }
            cfg.directory = Some(d);
        }
        validate_config(&cfg)?;
        self.st.set_config(cfg.clone());
        Ok(cfg.view())
    }
}

/// A capsule name as stored: trimmed, 1 to `MAX_TEXT_LEN` bytes.
fn capsule_name(raw: &str) -> Result<&str> {
    let name = raw.trim();
    if name.is_empty() || name.len() > MAX_TEXT_LEN {
        return Err(Error::InvalidArgument(format!("capsule name must be 1 to {MAX_TEXT_LEN} bytes")));
    }
    Ok(name)
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}
