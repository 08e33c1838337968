//! Where a new capsule goes: pure, so it is tested natively.

use candid::Principal;

use crate::api::{StorageInfo, StorageState};

/// Free room of a storage canister as last seen.
pub fn free_bytes(s: &StorageInfo) -> u64 {
    s.capacity_bytes.saturating_sub(s.stored_bytes)
}

/// The Active storage canister with the most free room (at least `min_free`), fewest
/// capsules on a tie, skipping `tried`. Full, upgrading, unreachable and closed
/// canisters never take a new capsule.
pub fn choose(storage: &[StorageInfo], min_free: u64, tried: &[Principal]) -> Option<Principal> {
    storage
        .iter()
        .filter(|s| s.state == StorageState::Active && !tried.contains(&s.canister_id))
        .filter(|s| free_bytes(s) >= min_free)
        .max_by(|a, b| free_bytes(a).cmp(&free_bytes(b)).then(b.capsules.cmp(&a.capsules)))
        .map(|s| s.canister_id)
}

/// Has it reached its capsule limit (as last seen)?
pub fn full_by_count(s: &StorageInfo) -> bool {
    matches!((s.capsules_held, s.max_capsules), (Some(held), Some(max)) if held >= max)
}

/// State after a fresh look at room: Active ↔ Full follow the free bytes and the
/// capsule count (both must have room); Closed and Upgrading stay.
pub fn state_for_room(s: &StorageInfo, min_free: u64) -> StorageState {
    match s.state {
        StorageState::Active | StorageState::Full | StorageState::Unreachable => {
            if free_bytes(s) >= min_free && !full_by_count(s) {
                StorageState::Active
            } else {
                StorageState::Full
            }
        }
        other => other,
    }
}

/// State after a call to it failed: Unreachable, but an operator's Closed and a
/// rolling upgrade's Upgrading stay (a background task never reopens a canister).
pub fn after_failure(state: StorageState) -> StorageState {
    match state {
        StorageState::Closed | StorageState::Upgrading => state,
        _ => StorageState::Unreachable,
    }
}

/// It answered `QuotaExceeded` to a create: its capsule limit is reached (the only
/// quota a directory create meets). Full by count, so a look at its free bytes alone
/// cannot make it Active again: the count it reported is at least its maximum until a
/// look at its `stats` and `upload_config` says otherwise. Closed and Upgrading stay.
pub fn after_quota_exceeded(s: &mut StorageInfo) {
    let held = s.capsules_held.unwrap_or(s.capsules).max(s.capsules);
    let max = s.max_capsules.unwrap_or(held).min(held);
    s.capsules_held = Some(held);
    s.max_capsules = Some(max);
    if matches!(s.state, StorageState::Active | StorageState::Full | StorageState::Unreachable) {
        s.state = StorageState::Full;
    }
}

/// What `capsules_create` may do under the sign-up policy (controllers are not asked).
#[derive(Debug, PartialEq, Eq)]
pub enum Signup {
    /// Open: take one from the window (which starts anew at `window_start`) and count
    /// one more sign-up capsule.
    Open { window_start: u64, new_in_window: u32 },
    /// InviteOnly: spend the invite code.
    Invite,
    /// Refused by a bound (NoRoom).
    Full(String),
    /// Refused: no valid code (Unauthorized).
    NoInvite(String),
}

/// The pure sign-up decision: `window` is the current (start, count), `signup_capsules`
/// the capsules made by sign-up so far, `invite` the expiry of the code given (None: no
/// code or an unknown one, which is the same to the caller).
pub fn signup(
    policy: &crate::api::SignupPolicy,
    now: u64,
    window: Option<(u64, u32)>,
    signup_capsules: u64,
    code_given: bool,
    invite_expiry: Option<u64>,
) -> Signup {
    use crate::api::SignupPolicy;
    match *policy {
        SignupPolicy::Open { max_new_per_window, window_secs, max_empty_capsules } => {
            if signup_capsules >= max_empty_capsules {
                return Signup::Full(format!(
                    "{signup_capsules} capsules made by sign-up, the most this directory takes now (max_empty_capsules); try later"
                ));
            }
            let len = window_secs.saturating_mul(1_000_000_000);
            let (start, n) = match window {
                Some((start, n)) if now < start.saturating_add(len) => (start, n),
                _ => (now, 0),
            };
            if n >= max_new_per_window {
                let left = start.saturating_add(len).saturating_sub(now) / 1_000_000_000 + 1;
                return Signup::Full(format!(
                    "{n} new capsules in this window, the most per {window_secs} s (max_new_per_window); try again in {left} s"
                ));
            }
            Signup::Open { window_start: start, new_in_window: n + 1 }
        }
        SignupPolicy::InviteOnly => match invite_expiry {
            _ if !code_given => Signup::NoInvite("this directory is invite-only: capsules_create needs an invite code".into()),
            None => Signup::NoInvite("the invite code is not valid (unknown or already used)".into()),
            Some(exp) if exp <= now => Signup::NoInvite("the invite code has expired".into()),
            Some(_) => Signup::Invite,
        },
    }
}

/// `reconcile`, for one pending placement, read afresh after every await: try the
/// create on its canister again, unless it is gone, or a create is awaited for it now.
pub fn reconcile_target(current: Option<&crate::state::Pending>, in_flight: bool) -> Option<Principal> {
    if in_flight {
        return None;
    }
    current.map(|p| p.canister)
}

/// After the create on `called` came back: the placement is still the one that was
/// tried (pending, on that canister), so its answer may finish or drop it. A placement
/// that moved on meanwhile is not touched.
pub fn still_placed_on(current: Option<&crate::state::Pending>, called: Principal) -> bool {
    current.is_some_and(|p| p.canister == called)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u8, state: StorageState, stored: u64, capsules: u64) -> StorageInfo {
        StorageInfo {
            canister_id: Principal::from_slice(&[n]),
            state,
            capsules,
            stored_bytes: stored,
            capacity_bytes: 100,
            cycles: 0,
            module_sha256: None,
            refreshed_at_ns: 0,
            last_error: None,
            capsules_held: None,
            max_capsules: None,
        }
    }

    #[test]
    fn most_room_wins_then_fewest_capsules() {
        let list = [s(1, StorageState::Active, 50, 1), s(2, StorageState::Active, 10, 9), s(3, StorageState::Active, 10, 3)];
        assert_eq!(choose(&list, 1, &[]), Some(Principal::from_slice(&[3])));
        assert_eq!(choose(&list, 1, &[Principal::from_slice(&[3])]), Some(Principal::from_slice(&[2])));
    }

    #[test]
    fn never_full_upgrading_unreachable_or_closed() {
        for st in [StorageState::Full, StorageState::Upgrading, StorageState::Unreachable, StorageState::Closed] {
            let list = [s(1, st, 0, 0), s(2, StorageState::Active, 95, 0)];
            assert_eq!(choose(&list, 1, &[]), Some(Principal::from_slice(&[2])), "{st:?}");
            assert_eq!(choose(&list, 10, &[]), None, "{st:?}: 5 bytes free is below the minimum");
        }
    }

    #[test]
    fn room_decides_active_or_full() {
        assert_eq!(state_for_room(&s(1, StorageState::Active, 95, 0), 10), StorageState::Full);
        assert_eq!(state_for_room(&s(1, StorageState::Full, 20, 0), 10), StorageState::Active);
        assert_eq!(state_for_room(&s(1, StorageState::Closed, 0, 0), 10), StorageState::Closed);
    }

    #[test]
    fn full_by_count_sticks_until_the_count_has_room() {
        // QuotaExceeded with plenty of free bytes: Full, and a look at the bytes alone
        // keeps it Full.
        let mut c = s(1, StorageState::Active, 0, 5);
        after_quota_exceeded(&mut c);
        assert_eq!(c.state, StorageState::Full);
        assert_eq!(state_for_room(&c, 10), StorageState::Full, "free bytes alone do not reopen it");
        // A look at its stats: the count is below a raised maximum → Active.
        c.max_capsules = Some(100);
        assert_eq!(state_for_room(&c, 10), StorageState::Active);
        // Count reached at a look, no QuotaExceeded needed.
        let mut d = s(2, StorageState::Active, 0, 0);
        d.capsules_held = Some(7);
        d.max_capsules = Some(7);
        assert_eq!(state_for_room(&d, 10), StorageState::Full);
        // Closed stays Closed.
        let mut e = s(3, StorageState::Closed, 0, 0);
        after_quota_exceeded(&mut e);
        assert_eq!(e.state, StorageState::Closed);
    }

    #[test]
    fn a_failure_never_reopens_a_closed_or_upgrading_canister() {
        assert_eq!(after_failure(StorageState::Closed), StorageState::Closed);
        assert_eq!(after_failure(StorageState::Upgrading), StorageState::Upgrading);
        assert_eq!(after_failure(StorageState::Active), StorageState::Unreachable);
        assert_eq!(after_failure(StorageState::Full), StorageState::Unreachable);
    }

    #[test]
    fn open_signup_is_bounded_by_window_and_by_count() {
        use crate::api::SignupPolicy;
        let p = SignupPolicy::Open { max_new_per_window: 2, window_secs: 10, max_empty_capsules: 5 };
        let sec = 1_000_000_000;
        assert_eq!(signup(&p, 100 * sec, None, 0, false, None), Signup::Open { window_start: 100 * sec, new_in_window: 1 });
        assert_eq!(signup(&p, 101 * sec, Some((100 * sec, 1)), 1, false, None), Signup::Open { window_start: 100 * sec, new_in_window: 2 });
        assert!(matches!(signup(&p, 109 * sec, Some((100 * sec, 2)), 2, false, None), Signup::Full(m) if m.contains("max_new_per_window")));
        // The next window starts anew.
        assert_eq!(signup(&p, 110 * sec, Some((100 * sec, 2)), 2, false, None), Signup::Open { window_start: 110 * sec, new_in_window: 1 });
        // The count of sign-up capsules bounds whatever the window says.
        assert!(matches!(signup(&p, 200 * sec, None, 5, false, None), Signup::Full(m) if m.contains("max_empty_capsules")));
    }

    #[test]
    fn invite_only_needs_a_live_code() {
        use crate::api::SignupPolicy;
        let p = SignupPolicy::InviteOnly;
        assert!(matches!(signup(&p, 10, None, 0, false, None), Signup::NoInvite(m) if m.contains("needs an invite")));
        assert!(matches!(signup(&p, 10, None, 0, true, None), Signup::NoInvite(m) if m.contains("not valid")));
        assert!(matches!(signup(&p, 10, None, 0, true, Some(10)), Signup::NoInvite(m) if m.contains("expired")));
        assert_eq!(signup(&p, 10, None, 1_000_000, true, Some(11)), Signup::Invite, "no count bound: the codes are the bound");
    }

    #[test]
    fn reconcile_acts_on_the_placement_as_it_is_now() {
        let c1 = Principal::from_slice(&[1]);
        let c2 = Principal::from_slice(&[2]);
        let p = |c| crate::state::Pending { canister: c, owner: Principal::from_slice(&[9]), name: "n".into(), signup: None };
        // Moved from c1 to c2 since the list was read: the create goes to c2, not c1.
        assert_eq!(reconcile_target(Some(&p(c2)), false), Some(c2));
        assert_eq!(reconcile_target(None, false), None, "finished meanwhile: nothing to create");
        assert_eq!(reconcile_target(Some(&p(c1)), true), None, "its create is awaited now");
        // The answer from c1 arrives after the placement moved to c2: not placed on c1.
        assert!(!still_placed_on(Some(&p(c2)), c1));
        assert!(!still_placed_on(None, c1));
        assert!(still_placed_on(Some(&p(c1)), c1));
    }
}
