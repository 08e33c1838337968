//! Directory mode of a storage canister (issue 14), natively over the domain logic:
//! who may create capsules, with which ids, and what a refusal leaves.

mod common;

use backend::api::{CapsuleCreateArgs, ConfigUpdate, DirectoryCapsuleArgs, Error, Role};
use backend::domain::Ctx;
use common::*;

fn controller(w: &World) -> Ctx {
    Ctx { caller: user(200), now: w.now, is_controller: true }
}

fn args(id: u64, owner: candid::Principal, name: &str) -> DirectoryCapsuleArgs {
    DirectoryCapsuleArgs { id, owner, name: name.into() }
}

#[test]
fn only_the_directory_creates_capsules_in_directory_mode() {
    let mut w = World::new();
    let (alice, dir, mallory) = (user(1), user(9), user(66));
    // Not in directory mode: nobody may use the directory's endpoint; users create as usual.
    let r = w.state.directory_capsules_create(&w.ctx(dir), args(5, alice, "x"));
    assert!(matches!(r, Err(Error::Unauthorized(_))), "{r:?}");
    let own = w.capsule(alice);
    // Only controllers switch it on.
    let update = ConfigUpdate { directory: Some(dir), ..Default::default() };
    assert!(matches!(w.state.admin_set_config(&w.ctx(mallory), update.clone()), Err(Error::Unauthorized(_))));
    let ctl = controller(&w);
    assert_eq!(w.state.admin_set_config(&ctl, update).unwrap().directory, Some(dir));

    // Users are sent to the directory; others may not pose as it.
    let before = w.state.stats().capsules;
    let r = w.state.capsules_create(&w.ctx(alice), CapsuleCreateArgs { name: "mine".into() });
    assert!(matches!(r, Err(Error::Unauthorized(ref m)) if m.contains(&dir.to_text())), "{r:?}");
    let r = w.state.directory_capsules_create(&w.ctx(mallory), args(7, mallory, "x"));
    assert!(matches!(r, Err(Error::Unauthorized(_))), "{r:?}");
    assert_eq!(w.state.stats().capsules, before, "refusals create nothing");

    // The directory creates with its id, for the owner; the same call again is the same
    // capsule (a retried placement), a different owner or name under that id a conflict.
    let c = w.state.directory_capsules_create(&w.ctx(dir), args(1000, alice, "family")).unwrap();
    assert_eq!((c.id, c.my_role), (1000, Some(Role::Owner)));
    assert_eq!(c.owners, vec![alice]);
    let again = w.state.directory_capsules_create(&w.ctx(dir), args(1000, alice, "family")).unwrap();
    assert_eq!(again.id, 1000);
    assert!(matches!(w.state.directory_capsules_create(&w.ctx(dir), args(1000, mallory, "family")), Err(Error::Conflict(_))));
    assert!(matches!(w.state.directory_capsules_create(&w.ctx(dir), args(own, alice, "photos2")), Err(Error::Conflict(_))));
    assert!(matches!(w.state.directory_capsules_create(&w.ctx(dir), args(0, alice, "z")), Err(Error::InvalidArgument(_))));
    assert!(matches!(w.state.directory_capsules_create(&w.ctx(dir), args(2, candid::Principal::anonymous(), "z")), Err(Error::InvalidArgument(_))));
    assert!(matches!(w.state.directory_capsules_create(&w.ctx(dir), args(3, alice, " ")), Err(Error::InvalidArgument(_))));
    assert_eq!(w.state.stats().capsules, before + 1);
    // The owner uses it as any capsule, and its id is reserved: local ids continue above.
    let s = w.begin(alice, 1000, 10, None);
    assert_eq!(s.capsule_id, 1000);
    w.upgrade();
    assert_eq!(w.state.capsules_get(&w.ctx(alice), 1000).unwrap().name, "family");
    assert_eq!(w.state.upload_config().directory, Some(dir), "directory mode survives an upgrade");
}
