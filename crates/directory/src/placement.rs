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

/// State after a fresh look at room: Active ↔ Full follow the room; other states stay.
pub fn state_for_room(s: &StorageInfo, min_free: u64) -> StorageState {
    match s.state {
        StorageState::Active | StorageState::Full | StorageState::Unreachable => {
            if free_bytes(s) >= min_free {
                StorageState::Active
            } else {
                StorageState::Full
            }
        }
        other => other,
    }
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
}
