//! The certified state tree: which `read_state` paths a sender may ask for, the tree
//! built from a [`Snapshot`] of the host (`/time`, `/subnet/…`, `/canister_ranges/…`,
//! `/canister/<id>/…`, `/request_status/<id>/…`), the pruned witness of the requested
//! paths, and its certificate signed with the subnet's BLS key. Query responses are
//! signed here too, with the node key.
//!
//! Trees are `ic-certification`'s (`NestedTree` keeps labels sorted and proves absent
//! paths); the query signature's message is `ic-transport-types`' `signable`.

use candid::Principal;
use ic_certification::{merge_hash_trees, AsHashTree, HashTree, NestedTree};
use ic_transport_types::{NodeSignature, QueryResponse, RequestId as TRequestId};

use crate::ingress::{Entry, RequestId, Status};
use crate::subnet::Subnet;

type Tree = NestedTree<Vec<u8>, Vec<u8>>;

/// Where a `read_state` was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effective {
    Canister(Principal),
    Subnet(Principal),
}

/// A refused `read_state` (HTTP status and why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal { status, message: message.into() }
}

/// What the paths of a `read_state` need from the host.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub request_id: Option<RequestId>,
    /// The effective canister's information is read.
    pub canister: bool,
    /// Metadata names asked for (`/canister/<id>/metadata/<name>`).
    pub metadata: Vec<String>,
}

/// One canister as the state tree shows it.
#[derive(Debug, Clone, Default)]
pub struct CanisterInfo {
    pub id: Option<Principal>,
    pub module_hash: Option<[u8; 32]>,
    pub controllers: Vec<Principal>,
    pub certified_data: Vec<u8>,
    /// `(name, public, bytes)` of the custom sections asked for that exist.
    pub metadata: Vec<(String, bool, Vec<u8>)>,
}

/// The host's state as one `read_state` sees it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub time: u64,
    pub canister: Option<CanisterInfo>,
    pub request: Option<(RequestId, Entry)>,
}

const REQUEST_STATUS_FIELDS: [&str; 5] = ["status", "reply", "reject_code", "reject_message", "error_code"];
const CANISTER_FIELDS: [&str; 4] = ["module_hash", "controllers", "certified_data", "metadata"];

/// Checks the shape of every path (the forms the specification lists) and what the
/// endpoint allows, and says what the host must be asked for.
pub fn plan(paths: &[Vec<Vec<u8>>], effective: Effective) -> Result<Plan, Refusal> {
    let mut plan = Plan::default();
    for p in paths {
        let label = |i: usize| p.get(i).map(Vec::as_slice);
        match label(0) {
            Some(b"time") if p.len() == 1 => {}
            Some(b"subnet") | Some(b"canister_ranges") | Some(b"api_boundary_nodes") if p.len() <= 4 => {}
            Some(b"request_status") if (2..=3).contains(&p.len()) => {
                let id: RequestId = p[1].as_slice().try_into().map_err(|_| refuse(400, "a request id has 32 bytes"))?;
                if p.len() == 3 && !REQUEST_STATUS_FIELDS.iter().any(|f| f.as_bytes() == p[2].as_slice()) {
                    return Err(refuse(400, format!("/request_status/<id>/{} is not a path of the state tree", lossy(&p[2]))));
                }
                match plan.request_id {
                    Some(other) if other != id => {
                        return Err(refuse(400, "all /request_status paths of one read_state must name the same request"));
                    }
                    _ => plan.request_id = Some(id),
                }
            }
            Some(b"canister") if (3..=4).contains(&p.len()) => {
                let Effective::Canister(ecid) = effective else {
                    return Err(refuse(400, "/canister paths are read at /api/v3/canister/<id>/read_state"));
                };
                if p[1] != ecid.as_slice() {
                    return Err(refuse(
                        403,
                        format!("/canister/{}/… may only be read with that canister as the effective canister id ({ecid})", lossy_principal(&p[1])),
                    ));
                }
                let field = p[2].as_slice();
                if !CANISTER_FIELDS.iter().any(|f| f.as_bytes() == field) || (field == b"metadata") != (p.len() == 4) {
                    return Err(refuse(400, format!("/canister/<id>/{} is not a path of the state tree", lossy(field))));
                }
                plan.canister = true;
                if field == b"metadata" {
                    let name = String::from_utf8(p[3].clone()).map_err(|_| refuse(400, "a metadata name is UTF-8"))?;
                    if !plan.metadata.contains(&name) {
                        plan.metadata.push(name);
                    }
                }
            }
            _ => return Err(refuse(400, format!("{} is not a path that can be read", show_path(p)))),
        }
    }
    Ok(plan)
}

/// Refuses what `sender` may not see: another sender's request, a request submitted
/// under another effective canister id, a private custom section of a canister the
/// sender does not control.
pub fn authorize(plan: &Plan, snap: &Snapshot, sender: Principal, effective: Effective) -> Result<(), Refusal> {
    if let Some((id, e)) = &snap.request {
        if e.sender != sender {
            return Err(refuse(403, format!("request {} was not sent by {sender}", crate::envelope::hex_id(id))));
        }
        if let Effective::Canister(ecid) = effective {
            if e.effective != ecid {
                return Err(refuse(403, format!("request {} was sent to effective canister {}, not {ecid}", crate::envelope::hex_id(id), e.effective)));
            }
        }
    }
    if let Some(c) = &snap.canister {
        for (name, public, _) in &c.metadata {
            if !public && plan.metadata.contains(name) && !c.controllers.contains(&sender) {
                return Err(refuse(403, format!("the metadata `{name}` is private: only the canister's controllers may read it")));
            }
        }
    }
    Ok(())
}

fn leb(n: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(10);
    leb128::write::unsigned(&mut v, n).expect("writing to a Vec cannot fail");
    v
}

fn key(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

fn insert_request(tree: &mut Tree, id: &RequestId, status: &Status) {
    let at = |field: &str| key(&[b"request_status", id, field.as_bytes()]);
    match status {
        Status::Received => tree.insert(&at("status"), b"received".to_vec()),
        Status::Done => tree.insert(&at("status"), b"done".to_vec()),
        Status::Replied(reply) => {
            tree.insert(&at("status"), b"replied".to_vec());
            tree.insert(&at("reply"), reply.clone());
        }
        Status::Rejected { code, message, error_code } => {
            tree.insert(&at("status"), b"rejected".to_vec());
            tree.insert(&at("reject_code"), leb(u64::from(*code)));
            tree.insert(&at("reject_message"), message.as_bytes().to_vec());
            if let Some(ec) = error_code {
                tree.insert(&at("error_code"), ec.as_bytes().to_vec());
            }
        }
    }
}

fn time_tree(time: u64) -> Tree {
    let mut t = Tree::default();
    t.insert(&key(&[b"time"]), leb(time));
    t
}

/// The certificate of a call's status (what a synchronous call answers): the subtree
/// `/request_status/<id>` and `/time`.
pub fn call_certificate(subnet: &Subnet, id: &RequestId, status: &Status, time: u64) -> Vec<u8> {
    let mut tree = time_tree(time);
    insert_request(&mut tree, id, status);
    subnet.signer.certificate(tree.as_hash_tree())
}

/// The full tree a `read_state` is answered from.
fn state_tree(subnet: &Subnet, snap: &Snapshot) -> Tree {
    let mut tree = time_tree(snap.time);
    let sid = subnet.id.as_slice();
    let ranges = serde_cbor::to_vec(&subnet.ranges).expect("ranges serialize");
    tree.insert(&key(&[b"subnet", sid, b"public_key"]), subnet.root_key_der.clone());
    tree.insert(&key(&[b"subnet", sid, b"canister_ranges"]), ranges.clone());
    tree.insert(&key(&[b"subnet", sid, b"type"]), b"application".to_vec());
    tree.insert(&key(&[b"subnet", sid, b"node", subnet.node.id().as_slice(), b"public_key"]), subnet.node.der().to_vec());
    let shard = subnet.ranges[0].0;
    tree.insert(&key(&[b"canister_ranges", sid, shard.as_slice()]), ranges);
    if let Some(c) = &snap.canister {
        if let Some(id) = c.id {
            let at = |f: &[u8]| key(&[b"canister", id.as_slice(), f]);
            if let Some(h) = c.module_hash {
                tree.insert(&at(b"module_hash"), h.to_vec());
                for (name, _, bytes) in &c.metadata {
                    tree.insert(&key(&[b"canister", id.as_slice(), b"metadata", name.as_bytes()]), bytes.clone());
                }
            }
            tree.insert(&at(b"controllers"), controllers_cbor(&c.controllers));
            tree.insert(&at(b"certified_data"), c.certified_data.clone());
        }
    }
    if let Some((id, e)) = &snap.request {
        insert_request(&mut tree, id, &e.status);
    }
    tree
}

/// `#6.55799([* principal bytes])`.
fn controllers_cbor(controllers: &[Principal]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_cbor::Serializer::new(&mut out);
    ser.self_describe().expect("writing to a Vec cannot fail");
    let list: Vec<serde_bytes::ByteBuf> = controllers.iter().map(|p| serde_bytes::ByteBuf::from(p.as_slice().to_vec())).collect();
    serde::Serialize::serialize(&list, &mut ser).expect("a list of blobs serializes");
    out
}

/// The certificate answering a `read_state`: the requested paths (and `/time`) revealed,
/// the rest of the tree pruned.
pub fn read_state_certificate(subnet: &Subnet, paths: &[Vec<Vec<u8>>], snap: &Snapshot) -> Vec<u8> {
    let tree = state_tree(subnet, snap);
    let mut witness: HashTree = tree.witness(&key(&[b"time"]));
    for p in paths {
        witness = merge_hash_trees(witness, tree.witness(p));
    }
    subnet.signer.certificate(witness)
}

/// The node's signature of a query response, as `verify_response` of the specification
/// checks it.
pub fn sign_query(subnet: &Subnet, response: &QueryResponse, request_id: &RequestId, timestamp: u64) -> NodeSignature {
    let signable = response.signable(TRequestId::new(request_id), timestamp);
    NodeSignature { timestamp, signature: subnet.node.sign(&signable), identity: subnet.node.id() }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lossy_principal(b: &[u8]) -> String {
    Principal::try_from_slice(b).map(|p| p.to_text()).unwrap_or_else(|_| crate::envelope::hex_id(b))
}

fn show_path(p: &[Vec<u8>]) -> String {
    let parts: Vec<String> = p
        .iter()
        .map(|l| match std::str::from_utf8(l) {
            Ok(s) if s.chars().all(|c| c.is_ascii_graphic()) => s.to_string(),
            _ => crate::envelope::hex_id(l),
        })
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use ic_certification::{Certificate, LookupResult};

    use super::*;
    use crate::subnet::NodeKey;

    fn subnet() -> Subnet {
        Subnet::new(ic_host::certify::SubnetKey::generate(), NodeKey::load_or_create(None).unwrap())
    }

    fn parse(cert: &[u8]) -> Certificate {
        serde_cbor::from_slice(cert).unwrap()
    }

    fn p(parts: &[&[u8]]) -> Vec<Vec<u8>> {
        key(parts)
    }

    #[test]
    fn read_state_reveals_what_was_asked_and_proves_absence() {
        let s = subnet();
        let cid = ic_host::DEFAULT_CANISTER_ID;
        let snap = Snapshot {
            time: 42,
            canister: Some(CanisterInfo {
                id: Some(cid),
                module_hash: Some([9; 32]),
                controllers: vec![Principal::anonymous()],
                certified_data: vec![1, 2],
                metadata: vec![("candid:service".into(), true, b"service : {}".to_vec())],
            }),
            request: Some(([5; 32], Entry { sender: Principal::anonymous(), effective: cid, expiry: 1, status: Status::Replied(vec![4]) })),
        };
        let paths = vec![
            p(&[b"canister", cid.as_slice(), b"module_hash"]),
            p(&[b"canister", cid.as_slice(), b"metadata", b"candid:service"]),
            p(&[b"request_status", &[5; 32]]),
            p(&[b"subnet"]),
        ];
        assert_eq!(plan(&paths, Effective::Canister(cid)).unwrap().metadata, vec!["candid:service".to_string()]);
        let cert = parse(&read_state_certificate(&s, &paths, &snap));
        let t = &cert.tree;
        assert_eq!(t.lookup_path([b"time".as_ref()]), LookupResult::Found(&[42]));
        assert_eq!(t.lookup_path([b"canister".as_ref(), cid.as_slice(), b"module_hash"]), LookupResult::Found(&[9; 32]));
        assert_eq!(
            t.lookup_path([b"canister".as_ref(), cid.as_slice(), b"metadata", b"candid:service"]),
            LookupResult::Found(b"service : {}")
        );
        assert_eq!(t.lookup_path([b"request_status".as_ref(), &[5; 32], b"reply"]), LookupResult::Found(&[4]));
        assert_eq!(t.lookup_path([b"subnet".as_ref(), s.id.as_slice(), b"public_key"]), LookupResult::Found(&s.root_key_der));
        // Not asked for: pruned (unknown), not revealed.
        assert_eq!(t.lookup_path([b"canister".as_ref(), cid.as_slice(), b"certified_data"]), LookupResult::Unknown);
        // Asked for and absent: provably absent.
        let other = p(&[b"request_status", &[6; 32]]);
        let snap2 = Snapshot { time: 1, ..Default::default() };
        let cert = parse(&read_state_certificate(&s, &[other], &snap2));
        assert_eq!(cert.tree.lookup_path([b"request_status".as_ref(), &[6; 32], b"status"]), LookupResult::Absent);
        // The signature covers the tree under the root key.
        let mut msg = b"\x0Dic-state-root".to_vec();
        msg.extend_from_slice(&cert.tree.digest());
        assert!(ic_verify_bls_signature::verify_bls_signature(&cert.signature, &msg, s.root_key_raw()).is_ok());
    }

    #[test]
    fn forbidden_paths_and_senders_are_refused() {
        let cid = ic_host::DEFAULT_CANISTER_ID;
        let other = ic_host::canister_id_of(7);
        let e = plan(&[p(&[b"canister", other.as_slice(), b"controllers"])], Effective::Canister(cid)).unwrap_err();
        assert_eq!(e.status, 403);
        assert_eq!(plan(&[p(&[b"canister", cid.as_slice(), b"secrets"])], Effective::Canister(cid)).unwrap_err().status, 400);
        assert_eq!(plan(&[p(&[b"request_status", &[1; 32]]), p(&[b"request_status", &[2; 32]])], Effective::Canister(cid)).unwrap_err().status, 400);
        assert_eq!(plan(&[p(&[b"nope"])], Effective::Canister(cid)).unwrap_err().status, 400);
        let mine = Entry { sender: Principal::from_slice(&[1]), effective: cid, expiry: 1, status: Status::Done };
        let snap = Snapshot { time: 1, canister: None, request: Some(([1; 32], mine)) };
        let plan1 = plan(&[p(&[b"request_status", &[1; 32]])], Effective::Canister(cid)).unwrap();
        assert_eq!(authorize(&plan1, &snap, Principal::from_slice(&[2]), Effective::Canister(cid)).unwrap_err().status, 403);
        assert!(authorize(&plan1, &snap, Principal::from_slice(&[1]), Effective::Canister(cid)).is_ok());
        assert_eq!(authorize(&plan1, &snap, Principal::from_slice(&[1]), Effective::Canister(other)).unwrap_err().status, 403);
        let private = Snapshot {
            time: 1,
            canister: Some(CanisterInfo {
                id: Some(cid),
                module_hash: Some([0; 32]),
                controllers: vec![Principal::from_slice(&[1])],
                certified_data: vec![],
                metadata: vec![("secret".into(), false, vec![1])],
            }),
            request: None,
        };
        let plan2 = plan(&[p(&[b"canister", cid.as_slice(), b"metadata", b"secret"])], Effective::Canister(cid)).unwrap();
        assert_eq!(authorize(&plan2, &private, Principal::from_slice(&[2]), Effective::Canister(cid)).unwrap_err().status, 403);
        assert!(authorize(&plan2, &private, Principal::from_slice(&[1]), Effective::Canister(cid)).is_ok());
    }

    #[test]
    fn query_signatures_verify_under_the_node_key() {
        let s = subnet();
        let resp = QueryResponse::Replied { reply: ic_transport_types::ReplyResponse { arg: vec![1, 2, 3] }, signatures: vec![] };
        let sig = sign_query(&s, &resp, &[3; 32], 77);
        let pk = ic_ed25519::PublicKey::deserialize_rfc8410_der(s.node.der()).unwrap();
        assert!(pk.verify_signature(&resp.signable(TRequestId::new(&[3; 32]), 77), &sig.signature).is_ok());
        assert!(pk.verify_signature(&resp.signable(TRequestId::new(&[4; 32]), 77), &sig.signature).is_err());
    }
}
