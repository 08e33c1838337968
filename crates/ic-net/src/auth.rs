//! Sender authentication, as the interface specification's "Authentication" section
//! says: an anonymous request carries no key, signature or delegation; any other sender
//! is the self-authenticating principal of `sender_pubkey`, every delegation of the
//! chain is signed by the key before it (first by `sender_pubkey`), is not expired and,
//! if it names targets, names the canister addressed, no key appears twice, and
//! `sender_sig` is the last key's signature over `"\x0Aic-request" · request_id`.
//!
//! The signature schemes are DFINITY's own crates: `ic-ed25519` (Ed25519),
//! `ic-secp256k1` and `ic-secp256r1` (ECDSA over SHA-256, 64-byte `r·s`), and
//! `ic-signature-verification` (canister signatures, e.g. Internet Identity's, checked
//! against this network's root key). WebAuthn keys are not supported.

use std::collections::HashSet;

use candid::Principal;

use crate::envelope::Request;

/// Domain separator of a request signature.
const REQUEST_DOMAIN: &[u8] = b"\x0Aic-request";
/// Domain separator of a delegation signature.
const DELEGATION_DOMAIN: &[u8] = b"\x1Aic-request-auth-delegation";

/// Why a request is not authentic (HTTP 400, nothing executed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError(pub String);

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail(msg: impl Into<String>) -> AuthError {
    AuthError(msg.into())
}

/// Checks that `req` was made by its `sender`. `target` is the canister the request
/// addresses (for delegations with targets); `None` (a subnet endpoint) refuses
/// delegations that are restricted to targets. `root_key_raw` is the network's BLS
/// key (96 bytes), which canister signatures are certified under.
pub fn authenticate(req: &Request, target: Option<Principal>, now_ns: u64, root_key_raw: &[u8]) -> Result<(), AuthError> {
    let context = || format!("Failed to authenticate request {}", req.request_id_text());
    if req.sender == Principal::anonymous() {
        if req.sender_pubkey.is_some() || req.sender_sig.is_some() || !req.delegations.is_empty() {
            return Err(fail(format!(
                "{}: an anonymous request must carry no sender_pubkey, sender_sig or sender_delegation",
                context()
            )));
        }
        return Ok(());
    }
    let (Some(pubkey), Some(sig)) = (&req.sender_pubkey, &req.sender_sig) else {
        return Err(fail(format!("{}: sender {} is not anonymous, so sender_pubkey and sender_sig are required", context(), req.sender)));
    };
    if Principal::self_authenticating(pubkey) != req.sender {
        return Err(fail(format!(
            "{}: the sender {} is not the principal of sender_pubkey ({})",
            context(),
            req.sender,
            Principal::self_authenticating(pubkey)
        )));
    }
    let mut key = pubkey.as_slice();
    let mut seen: HashSet<&[u8]> = HashSet::from([key]);
    for (i, d) in req.delegations.iter().enumerate() {
        let mut msg = DELEGATION_DOMAIN.to_vec();
        msg.extend_from_slice(&d.hash);
        verify(key, &msg, &d.signature, root_key_raw).map_err(|e| fail(format!("{}: delegation {i}: {e}", context())))?;
        if d.expiration < now_ns {
            return Err(fail(format!("{}: delegation {i} expired at {} (now {now_ns})", context(), d.expiration)));
        }
        if let Some(targets) = &d.targets {
            match target {
                Some(t) if targets.contains(&t) => {}
                Some(t) => return Err(fail(format!("{}: delegation {i} does not allow requests to canister {t}", context()))),
                None => return Err(fail(format!("{}: delegation {i} is restricted to canisters; this endpoint addresses a subnet", context()))),
            }
        }
        if !seen.insert(d.pubkey.as_slice()) {
            return Err(fail(format!("{}: delegation {i} repeats a key of the chain (cycles are not allowed)", context())));
        }
        key = d.pubkey.as_slice();
    }
    let mut msg = REQUEST_DOMAIN.to_vec();
    msg.extend_from_slice(&req.request_id);
    verify(key, &msg, sig, root_key_raw).map_err(|e| fail(format!("{}: {e}", context())))
}

/// Verifies `sig` over `msg` under the DER public key `der`, whatever its scheme.
pub fn verify(der: &[u8], msg: &[u8], sig: &[u8], root_key_raw: &[u8]) -> Result<(), String> {
    if let Ok(k) = ic_ed25519::PublicKey::deserialize_rfc8410_der(der) {
        return k.verify_signature(msg, sig).map_err(|e| format!("invalid Ed25519 signature ({e:?})"));
    }
    if let Ok(k) = ic_secp256k1::PublicKey::deserialize_der(der) {
        // The request id, not the signature, identifies a request: a second valid
        // encoding of the same signature gains nothing, so high-s is accepted.
        return match k.verify_ecdsa_signature_with_malleability(msg, sig) {
            true => Ok(()),
            false => Err("invalid ECDSA secp256k1 signature".into()),
        };
    }
    if let Ok(k) = ic_secp256r1::PublicKey::deserialize_der(der) {
        return match k.verify_signature(msg, sig) {
            true => Ok(()),
            false => Err("invalid ECDSA P-256 signature".into()),
        };
    }
    // `ic-canister-sig-creation` 1.3 slices the key before checking its length (a key of
    // a few bytes panics in it): only a key longer than its DER prefix reaches it.
    let prefix = ic_canister_sig_creation::CANISTER_SIG_PK_DER_PREFIX_LENGTH;
    if der.len() <= prefix || ic_canister_sig_creation::CanisterSigPublicKey::try_from(der).is_err() {
        return Err("unsupported public key: Ed25519, ECDSA secp256k1, ECDSA P-256 and canister signature keys are supported".into());
    }
    ic_signature_verification::verify_canister_sig(msg, sig, der, root_key_raw).map_err(|e| format!("invalid canister signature: {e}"))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use ic_agent::identity::{BasicIdentity, DelegatedIdentity, Prime256v1Identity, Secp256k1Identity};
    use ic_agent::Identity;
    use ic_transport_types::{Delegation as TDelegation, Envelope, EnvelopeContent, SignedDelegation};

    use super::*;
    use crate::envelope::{Kind, Request};

    const NOW: u64 = 1_800_000_000_000_000_000;
    const CANISTER: Principal = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);

    fn ed25519(seed: u8) -> BasicIdentity {
        BasicIdentity::from_raw_key(&[seed; 32])
    }

    fn content(sender: Principal) -> EnvelopeContent {
        EnvelopeContent::Call {
            nonce: None,
            ingress_expiry: NOW + 60_000_000_000,
            sender,
            canister_id: CANISTER,
            method_name: "capsules_create".into(),
            arg: vec![1, 2, 3],
            sender_info: None,
        }
    }

    /// Signs with the client library's own code path (as ic-agent does for every request).
    fn signed(id: &dyn Identity) -> Vec<u8> {
        let content = content(id.sender().unwrap());
        let sig = id.sign(&content).unwrap();
        Envelope {
            content: Cow::Owned(content),
            sender_pubkey: sig.public_key,
            sender_sig: sig.signature,
            sender_delegation: sig.delegations,
        }
        .encode_bytes()
    }

    fn check(bytes: &[u8]) -> Result<(), AuthError> {
        authenticate(&Request::parse(bytes, Kind::Call).unwrap(), Some(CANISTER), NOW, &[0; 96])
    }

    fn k256(seed: u8) -> Secp256k1Identity {
        Secp256k1Identity::from_private_key(k256::SecretKey::from_slice(&[seed; 32]).unwrap())
    }

    fn p256(seed: u8) -> Prime256v1Identity {
        Prime256v1Identity::from_private_key(p256::SecretKey::from_slice(&[seed; 32]).unwrap())
    }

    #[test]
    fn ed25519_secp256k1_and_p256_signatures_verify_and_tampering_fails() {
        let ids: Vec<Box<dyn Identity>> = vec![Box::new(ed25519(3)), Box::new(k256(4)), Box::new(p256(5))];
        for id in ids {
            let good = signed(id.as_ref());
            check(&good).unwrap_or_else(|e| panic!("{e}"));
            // Another request (other argument) under the same signature: refused.
            let mut env: Envelope = serde_cbor::from_slice(&good).unwrap();
            if let EnvelopeContent::Call { arg, .. } = env.content.to_mut() {
                arg.push(4);
            }
            let e = check(&env.encode_bytes()).unwrap_err();
            assert!(e.0.contains("invalid"), "{e}");
        }
    }

    #[test]
    fn a_sender_that_is_not_the_key_is_refused() {
        let alice = ed25519(1);
        let mallory = ed25519(2);
        // Mallory signs a request claiming to come from Alice.
        let forged = content(alice.sender().unwrap());
        let sig = mallory.sign(&forged).unwrap();
        let env = Envelope { content: Cow::Owned(forged), sender_pubkey: sig.public_key, sender_sig: sig.signature, sender_delegation: None };
        let e = check(&env.encode_bytes()).unwrap_err();
        assert!(e.0.contains("is not the principal of sender_pubkey"), "{e}");
        // Alice's key with a signature missing.
        let unsigned = content(alice.sender().unwrap());
        let sig = alice.sign(&unsigned).unwrap();
        let env = Envelope { content: Cow::Owned(unsigned), sender_pubkey: sig.public_key, sender_sig: None, sender_delegation: None };
        assert!(check(&env.encode_bytes()).unwrap_err().0.contains("required"));
    }

    #[test]
    fn anonymous_requests_carry_no_signature() {
        let anon = ic_agent::identity::AnonymousIdentity;
        check(&signed(&anon)).unwrap();
        let content = content(Principal::anonymous());
        let env = Envelope { content: Cow::Owned(content), sender_pubkey: Some(vec![1]), sender_sig: Some(vec![2]), sender_delegation: None };
        assert!(check(&env.encode_bytes()).unwrap_err().0.contains("anonymous"));
    }

    fn delegate(from: &dyn Identity, to: &dyn Identity, expiration: u64, targets: Option<Vec<Principal>>) -> SignedDelegation {
        let delegation = TDelegation { pubkey: to.public_key().unwrap(), expiration, targets, permissions: None };
        let signature = from.sign_delegation(&delegation).unwrap().signature.unwrap();
        SignedDelegation { delegation, signature }
    }

    #[test]
    fn delegation_chains_verify_with_their_rules() {
        let root = ed25519(10);
        let mid = k256(11);
        let session = p256(12);
        let chain = vec![
            delegate(&root, &mid, NOW + 1_000, None),
            delegate(&mid, &session, NOW + 1_000, Some(vec![CANISTER])),
        ];
        let id = |chain: Vec<SignedDelegation>| DelegatedIdentity::new_unchecked(root.public_key().unwrap(), Box::new(p256(12)), chain);
        // Valid: the request is Alice's (root key's principal), signed by the session key.
        let ok = signed(&id(chain.clone()));
        check(&ok).unwrap_or_else(|e| panic!("{e}"));
        let req = Request::parse(&ok, Kind::Call).unwrap();
        assert_eq!(req.sender, root.sender().unwrap());

        // Expired.
        let expired = vec![delegate(&root, &mid, NOW - 1, None), chain[1].clone()];
        assert!(check(&signed(&id(expired))).unwrap_err().0.contains("expired"));
        // Targets that do not include the canister.
        let other = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 9, 1, 1]);
        let wrong_target = vec![chain[0].clone(), delegate(&mid, &session, NOW + 1_000, Some(vec![other]))];
        assert!(check(&signed(&id(wrong_target))).unwrap_err().0.contains("does not allow"));
        // A forged delegation signature (signed by a key not in the chain).
        let forged = vec![delegate(&ed25519(99), &mid, NOW + 1_000, None), chain[1].clone()];
        assert!(check(&signed(&id(forged))).unwrap_err().0.contains("delegation 0"));
        // A cycle: the chain delegates back to the root key.
        let looped = vec![delegate(&root, &mid, NOW + 1_000, None), delegate(&mid, &root, NOW + 1_000, None)];
        let cyc = DelegatedIdentity::new_unchecked(root.public_key().unwrap(), Box::new(ed25519(10)), looped);
        assert!(check(&signed(&cyc)).unwrap_err().0.contains("repeats"));
        // A subnet endpoint with a target-restricted chain.
        let req = Request::parse(&ok, Kind::Call).unwrap();
        assert!(authenticate(&req, None, NOW, &[0; 96]).unwrap_err().0.contains("subnet"));
    }

    #[test]
    fn unknown_key_types_are_refused() {
        let content = content(Principal::self_authenticating([1, 2, 3]));
        let env = Envelope {
            content: Cow::Owned(content),
            sender_pubkey: Some(vec![1, 2, 3]),
            sender_sig: Some(vec![0; 64]),
            sender_delegation: None,
        };
        assert!(check(&env.encode_bytes()).unwrap_err().0.contains("unsupported public key"));
    }
}
