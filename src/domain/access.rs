//! Who may see and do what, for every endpoint.
//!
//! - What a caller may not see answers exactly like what does not exist: `NotFound`
//!   with the same message, so ids cannot be probed. What they see but may not do is
//!   `Unauthorized`.
//! - Rights are read from the capsule on every call: a role change or a removal takes
//!   effect on the member's next call, in the middle of an upload too.
//! - Controllers act as owners of every capsule. Anonymous callers never write.
//! - An upload session is seen by its creator while they are a member of its capsule,
//!   and by the capsule's owners. Only its creator, while a writer, puts and finishes;
//!   anyone who sees it may abort it.

use candid::Principal;
use ic_stable_structures::Memory;

use super::records::{BlobRecord, CapsuleRecord, MemoryRecord, SessionRecord};
use super::{Ctx, State};
use crate::api::{Error, Result, Role};

pub(crate) fn capsule_not_found(id: u64) -> Error {
    Error::NotFound(format!("capsule {id} does not exist"))
}

pub(crate) fn blob_not_found(id: u64) -> Error {
    Error::NotFound(format!("blob {id} does not exist"))
}

pub(crate) fn memory_not_found(id: u64) -> Error {
    Error::NotFound(format!("memory {id} does not exist"))
}

pub(crate) fn session_not_found(id: u64) -> Error {
    Error::NotFound(format!("upload session {id} does not exist"))
}

impl<M: Memory + Clone> State<M> {
    /// The capsule record, whoever asks (internal use).
    pub(crate) fn capsule(&self, id: u64) -> Result<CapsuleRecord> {
        self.st.capsules.get(&id).map(|c| c.0).ok_or_else(|| capsule_not_found(id))
    }

    /// The caller's role in a capsule; controllers act as owners.
    pub(crate) fn role(&self, ctx: &Ctx, capsule: &CapsuleRecord) -> Option<Role> {
        if ctx.is_controller {
            return Some(Role::Owner);
        }
        capsule.role_of(&ctx.caller)
    }

    fn role_in(&self, ctx: &Ctx, capsule_id: u64) -> Option<Role> {
        self.st.capsules.get(&capsule_id).and_then(|c| self.role(ctx, &c.0))
    }

    /// The capsule, if the caller has at least `min` in it. Non-members get the
    /// `NotFound` of a capsule that does not exist.
    pub(crate) fn require_role(&self, ctx: &Ctx, capsule_id: u64, min: Role) -> Result<CapsuleRecord> {
        no_anonymous_write(ctx, min)?;
        let capsule = self.capsule(capsule_id)?;
        at_least(ctx, self.role(ctx, &capsule), capsule_id, min, || capsule_not_found(capsule_id))?;
        Ok(capsule)
    }

    /// A blob of a capsule the caller has at least `min` in.
    pub(crate) fn visible_blob(&self, ctx: &Ctx, blob_id: u64, min: Role) -> Result<BlobRecord> {
        let blob = self.st.blobs.get(&blob_id).map(|b| b.0).ok_or_else(|| blob_not_found(blob_id))?;
        at_least(ctx, self.role_in(ctx, blob.capsule_id), blob.capsule_id, min, || blob_not_found(blob_id))?;
        Ok(blob)
    }

    /// A memory of a capsule the caller has at least `min` in.
    pub(crate) fn visible_memory(&self, ctx: &Ctx, id: u64, min: Role) -> Result<MemoryRecord> {
        no_anonymous_write(ctx, min)?;
        let rec = self.st.memories.get(&id).map(|m| m.0).ok_or_else(|| memory_not_found(id))?;
        at_least(ctx, self.role_in(ctx, rec.capsule_id), rec.capsule_id, min, || memory_not_found(id))?;
        Ok(rec)
    }

    /// An upload session the caller may see: theirs while they are a member of its
    /// capsule, or any session of a capsule they own.
    pub(crate) fn visible_session(&self, ctx: &Ctx, id: u64) -> Result<SessionRecord> {
        self.visible_session_role(ctx, id).map(|(rec, _)| rec)
    }

    /// [`State::visible_session`] and the caller's role in its capsule.
    pub(crate) fn visible_session_role(&self, ctx: &Ctx, id: u64) -> Result<(SessionRecord, Role)> {
        let rec = self.st.sessions.get(&id).map(|r| r.0).ok_or_else(|| session_not_found(id))?;
        match self.role_in(ctx, rec.capsule_id) {
            Some(r) if r == Role::Owner || rec.owner == ctx.caller => Ok((rec, r)),
            _ => Err(session_not_found(id)),
        }
    }

    /// A session the caller may put chunks into or finish: their own, while they are
    /// a writer of its capsule.
    pub(crate) fn own_session_as_writer(&self, ctx: &Ctx, id: u64) -> Result<SessionRecord> {
        let (rec, role) = self.visible_session_role(ctx, id)?;
        if rec.owner != ctx.caller {
            return Err(Error::Unauthorized(format!(
                "only the creator of upload session {id} can put its chunks or finish it; owners can abort it"
            )));
        }
        at_least(ctx, Some(role), rec.capsule_id, Role::Writer, || session_not_found(id))?;
        Ok(rec)
    }

    /// What `canister_inspect_message` asks of a chunk: is the caller the creator of
    /// this session and still a writer? (A cycle saving, not the check: the put checks.)
    pub fn may_put_chunks(&self, ctx: &Ctx, session_id: u64) -> bool {
        self.own_session_as_writer(ctx, session_id).is_ok()
    }
}

/// The one role check: `role` (the caller's in `capsule_id`) if it is at least `min`.
/// Non-members get `hidden()`, the `NotFound` of what they asked for, so ids cannot be
/// probed; members below `min` get `Unauthorized`.
pub(crate) fn at_least(ctx: &Ctx, role: Option<Role>, capsule_id: u64, min: Role, hidden: impl FnOnce() -> Error) -> Result<Role> {
    match role {
        Some(r) if r >= min => Ok(r),
        Some(r) => Err(Error::Unauthorized(format!(
            "caller {} is {r:?} of capsule {capsule_id}; this needs {min:?}",
            ctx.caller
        ))),
        None => Err(hidden()),
    }
}

fn no_anonymous_write(ctx: &Ctx, min: Role) -> Result<()> {
    if ctx.caller == Principal::anonymous() && min > Role::Reader {
        return Err(Error::Unauthorized("anonymous callers cannot write; sign in first".into()));
    }
    Ok(())
}
