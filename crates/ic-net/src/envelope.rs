//! Requests as they arrive: the CBOR authentication envelope, its `content` map, the
//! request id (the representation-independent hash of `content`, over every field the
//! client sent, known or not), and the limits of the interface specification.
//!
//! The envelope is read as a generic CBOR value first, so the request id and the hashes
//! of delegations cover exactly what the client signed; the known fields are then taken
//! out with their types. Anything malformed is a [`BadRequest`] (HTTP 400).

use std::collections::BTreeMap;

use candid::Principal;
use serde_cbor::Value;
use sha2::{Digest, Sha256};

/// The whole HTTP request body is at most 2 MiB (the ingress message limit).
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// At most this far ahead may `ingress_expiry` be (the IC's `MAX_INGRESS_TTL`)…
pub const MAX_INGRESS_TTL_NS: u64 = 5 * 60 * 1_000_000_000;
/// … plus this much clock drift between client and network.
pub const PERMITTED_DRIFT_NS: u64 = 60 * 1_000_000_000;
const MAX_NONCE_BYTES: usize = 32;
const MAX_PATHS: usize = 1000;
const MAX_PATH_LABELS: usize = 127;
const MAX_DELEGATIONS: usize = 20;
const MAX_TARGETS: usize = 1000;

/// A request the interface refuses before looking further (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

impl std::fmt::Display for BadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(msg: impl Into<String>) -> BadRequest {
    BadRequest(msg.into())
}

/// The three request types of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Call,
    Query,
    ReadState,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Call => "call",
            Kind::Query => "query",
            Kind::ReadState => "read_state",
        }
    }
}

/// One delegation of the sender's chain, with the hash its signature covers.
#[derive(Debug, Clone)]
pub struct Delegation {
    pub pubkey: Vec<u8>,
    pub expiration: u64,
    pub targets: Option<Vec<Principal>>,
    /// Representation-independent hash of the `delegation` map as sent.
    pub hash: [u8; 32],
    pub signature: Vec<u8>,
}

/// A parsed request: the content's fields and the envelope's authentication.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: Kind,
    pub request_id: [u8; 32],
    pub sender: Principal,
    pub ingress_expiry: u64,
    /// `call` and `query`.
    pub canister_id: Principal,
    pub method_name: String,
    pub arg: Vec<u8>,
    /// `read_state`.
    pub paths: Vec<Vec<Vec<u8>>>,
    pub sender_pubkey: Option<Vec<u8>>,
    pub sender_sig: Option<Vec<u8>>,
    pub delegations: Vec<Delegation>,
}

impl Request {
    /// Parses an envelope that must be of `kind`.
    pub fn parse(body: &[u8], kind: Kind) -> Result<Request, BadRequest> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(bad(format!("the request has {} bytes, more than the limit of {MAX_REQUEST_BYTES}", body.len())));
        }
        let value: Value = serde_cbor::from_slice(body).map_err(|e| bad(format!("the request body is not valid CBOR: {e}")))?;
        let mut envelope = into_map(untag(value), "the envelope")?;
        let content = envelope.remove("content").ok_or_else(|| bad("the envelope has no `content`"))?;
        let content = into_map(content, "`content`")?;
        let request_id = hash_of_map(&content)?;
        let sender_pubkey = take_opt_bytes(&mut envelope, "sender_pubkey")?;
        let sender_sig = take_opt_bytes(&mut envelope, "sender_sig")?;
        let delegations = match envelope.remove("sender_delegation") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > MAX_DELEGATIONS {
                    return Err(bad(format!("at most {MAX_DELEGATIONS} delegations are allowed, got {}", items.len())));
                }
                items.into_iter().map(parse_delegation).collect::<Result<_, _>>()?
            }
            Some(_) => return Err(bad("`sender_delegation` is not an array")),
        };

        let mut c = content;
        let request_type = take_text(&mut c, "request_type")?;
        if request_type != kind.name() {
            return Err(bad(format!("this endpoint takes `{}` requests, not `{request_type}`", kind.name())));
        }
        if c.contains_key("sender_info") {
            return Err(bad("`sender_info` is not supported by this network"));
        }
        let sender = take_principal(&mut c, "sender")?;
        let ingress_expiry = take_nat(&mut c, "ingress_expiry")?;
        if let Some(nonce) = take_opt_bytes(&mut c, "nonce")? {
            if nonce.len() > MAX_NONCE_BYTES {
                return Err(bad(format!("the nonce has {} bytes, at most {MAX_NONCE_BYTES} are allowed", nonce.len())));
            }
        }
        let mut req = Request {
            kind,
            request_id,
            sender,
            ingress_expiry,
            canister_id: Principal::management_canister(),
            method_name: String::new(),
            arg: Vec::new(),
            paths: Vec::new(),
            sender_pubkey,
            sender_sig,
            delegations,
        };
        match kind {
            Kind::Call | Kind::Query => {
                req.canister_id = take_principal(&mut c, "canister_id")?;
                req.method_name = take_text(&mut c, "method_name")?;
                req.arg = take_bytes(&mut c, "arg")?;
            }
            Kind::ReadState => {
                let Some(Value::Array(paths)) = c.remove("paths") else {
                    return Err(bad("`paths` is missing or not an array"));
                };
                if paths.len() > MAX_PATHS {
                    return Err(bad(format!("at most {MAX_PATHS} paths may be read at once, got {}", paths.len())));
                }
                for p in paths {
                    let Value::Array(labels) = p else { return Err(bad("a path is not an array")) };
                    if labels.len() > MAX_PATH_LABELS {
                        return Err(bad(format!("a path has {} labels, at most {MAX_PATH_LABELS} are allowed", labels.len())));
                    }
                    let labels = labels
                        .into_iter()
                        .map(|l| match l {
                            Value::Bytes(b) => Ok(b),
                            _ => Err(bad("a path label is not a blob")),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    req.paths.push(labels);
                }
            }
        }
        Ok(req)
    }

    /// Refuses an `ingress_expiry` in the past or further ahead than allowed, with the
    /// wording clients look for ("Invalid request expiry: "): agent-js then syncs its
    /// clock with the network and retries.
    pub fn check_expiry(&self, now_ns: u64) -> Result<(), BadRequest> {
        let max = now_ns.saturating_add(MAX_INGRESS_TTL_NS + PERMITTED_DRIFT_NS);
        if self.ingress_expiry < now_ns || self.ingress_expiry > max {
            return Err(bad(format!(
                "Invalid request expiry: Specified ingress_expiry not within expected range: \
                 Minimum allowed expiry: {now_ns}, Maximum allowed expiry: {max}, Provided expiry: {} (nanoseconds since 1970)",
                self.ingress_expiry
            )));
        }
        Ok(())
    }

    /// `0x…`, as the specification recommends printing request ids.
    pub fn request_id_text(&self) -> String {
        hex_id(&self.request_id)
    }
}

/// A request id as `0x…`.
pub fn hex_id(id: &[u8]) -> String {
    let mut s = String::from("0x");
    for b in id {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn parse_delegation(v: Value) -> Result<Delegation, BadRequest> {
    let mut signed = into_map(v, "a delegation")?;
    let signature = take_bytes(&mut signed, "signature")?;
    let inner = signed.remove("delegation").ok_or_else(|| bad("a delegation has no `delegation` map"))?;
    let mut d = into_map(inner, "`delegation`")?;
    let hash = hash_of_map(&d)?;
    let pubkey = take_bytes(&mut d, "pubkey")?;
    let expiration = take_nat(&mut d, "expiration")?;
    let targets = match d.remove("targets") {
        None => None,
        Some(Value::Array(ts)) => {
            if ts.len() > MAX_TARGETS {
                return Err(bad(format!("a delegation may name at most {MAX_TARGETS} targets, got {}", ts.len())));
            }
            let ts = ts
                .into_iter()
                .map(|t| match t {
                    Value::Bytes(b) => Principal::try_from_slice(&b).map_err(|_| bad("a delegation target is not a principal")),
                    _ => Err(bad("a delegation target is not a blob")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(ts)
        }
        Some(_) => return Err(bad("a delegation's `targets` is not an array")),
    };
    if d.contains_key("senders") || d.contains_key("permissions") {
        // Restrictions this network does not enforce must not be silently ignored.
        return Err(bad("delegations with `senders` or `permissions` are not supported by this network"));
    }
    Ok(Delegation { pubkey, expiration, targets, hash, signature })
}

type Map = BTreeMap<String, Value>;

/// Drops the self-describing CBOR tag (55799), wherever a client put one.
fn untag(v: Value) -> Value {
    match v {
        Value::Tag(55799, inner) => untag(*inner),
        v => v,
    }
}

fn into_map(v: Value, what: &str) -> Result<Map, BadRequest> {
    let Value::Map(m) = untag(v) else { return Err(bad(format!("{what} is not a map"))) };
    m.into_iter()
        .map(|(k, v)| match k {
            Value::Text(k) => Ok((k, v)),
            _ => Err(bad(format!("{what} has a key that is not text"))),
        })
        .collect()
}

fn take_opt_bytes(m: &mut Map, key: &str) -> Result<Option<Vec<u8>>, BadRequest> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(_) => Err(bad(format!("`{key}` is not a blob"))),
    }
}

fn take_bytes(m: &mut Map, key: &str) -> Result<Vec<u8>, BadRequest> {
    take_opt_bytes(m, key)?.ok_or_else(|| bad(format!("`{key}` is missing")))
}

fn take_text(m: &mut Map, key: &str) -> Result<String, BadRequest> {
    match m.remove(key) {
        Some(Value::Text(s)) => Ok(s),
        Some(_) => Err(bad(format!("`{key}` is not text"))),
        None => Err(bad(format!("`{key}` is missing"))),
    }
}

fn take_nat(m: &mut Map, key: &str) -> Result<u64, BadRequest> {
    match m.remove(key) {
        Some(Value::Integer(n)) => u64::try_from(n).map_err(|_| bad(format!("`{key}` is not a 64-bit natural number"))),
        Some(_) => Err(bad(format!("`{key}` is not a number"))),
        None => Err(bad(format!("`{key}` is missing"))),
    }
}

fn take_principal(m: &mut Map, key: &str) -> Result<Principal, BadRequest> {
    let b = take_bytes(m, key)?;
    Principal::try_from_slice(&b).map_err(|_| bad(format!("`{key}` is not a principal (at most 29 bytes)")))
}

/// The representation-independent hash of a map (the interface specification's
/// `hash_of_map`). Written here because the envelope is hashed as a generic CBOR value,
/// with nested maps and every field the client sent; DFINITY's
/// `ic-representation-independent-hash` covers only flat maps of known types.
pub fn hash_of_map(m: &Map) -> Result<[u8; 32], BadRequest> {
    let mut pairs = Vec::with_capacity(m.len());
    for (k, v) in m {
        let mut pair = [0u8; 64];
        pair[..32].copy_from_slice(&Sha256::digest(k.as_bytes()));
        pair[32..].copy_from_slice(&hash_value(v)?);
        pairs.push(pair);
    }
    pairs.sort_unstable();
    let mut h = Sha256::new();
    for p in &pairs {
        h.update(p);
    }
    Ok(h.finalize().into())
}

fn hash_value(v: &Value) -> Result<[u8; 32], BadRequest> {
    Ok(match v {
        Value::Bytes(b) => Sha256::digest(b).into(),
        Value::Text(s) => Sha256::digest(s.as_bytes()).into(),
        Value::Integer(n) => {
            let mut buf = Vec::with_capacity(19);
            if *n >= 0 {
                let n = u64::try_from(*n).map_err(|_| bad("a number does not fit 64 bits"))?;
                leb128::write::unsigned(&mut buf, n).map_err(|e| bad(e.to_string()))?;
            } else {
                let n = i64::try_from(*n).map_err(|_| bad("a number does not fit 64 bits"))?;
                leb128::write::signed(&mut buf, n).map_err(|e| bad(e.to_string()))?;
            }
            Sha256::digest(&buf).into()
        }
        Value::Array(items) => {
            let mut h = Sha256::new();
            for i in items {
                h.update(hash_value(i)?);
            }
            h.finalize().into()
        }
        Value::Map(_) => hash_of_map(&into_map(v.clone(), "a nested value")?)?,
        Value::Tag(55799, inner) => hash_value(inner)?,
        _ => {
            return Err(bad("the request holds a value of a type that cannot be hashed (only blobs, text, numbers, arrays and maps can)"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the interface specification ("Request ids").
    #[test]
    fn request_id_matches_the_specification_example() {
        let mut m = Map::new();
        m.insert("request_type".into(), Value::Text("call".into()));
        m.insert("sender".into(), Value::Bytes(vec![0x04]));
        m.insert("ingress_expiry".into(), Value::Integer(1_685_570_400_000_000_000));
        m.insert("canister_id".into(), Value::Bytes(vec![0, 0, 0, 0, 0, 0, 0x04, 0xD2]));
        m.insert("method_name".into(), Value::Text("hello".into()));
        m.insert("arg".into(), Value::Bytes(b"DIDL\x00\xFD*".to_vec()));
        assert_eq!(hex_id(&hash_of_map(&m).unwrap()), "0x1d1091364d6bb8a6c16b203ee75467d59ead468f523eb058880ae8ec80e2b101");
    }

    /// The same request id as the client libraries compute (ic-transport-types, used by
    /// ic-agent), for every request type.
    #[test]
    fn request_ids_agree_with_ic_transport_types() {
        use ic_transport_types::EnvelopeContent;
        let contents = [
            EnvelopeContent::Call {
                nonce: Some(vec![1, 2, 3]),
                ingress_expiry: 1_700_000_000_000_000_000,
                sender: Principal::anonymous(),
                canister_id: Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 1, 1]),
                method_name: "uploads_begin".into(),
                arg: vec![0x44, 0x49, 0x44, 0x4c, 0, 0],
                sender_info: None,
            },
            EnvelopeContent::Query {
                ingress_expiry: 1_700_000_000_000_000_000,
                sender: Principal::from_slice(&[7; 29]),
                canister_id: Principal::management_canister(),
                method_name: "stats".into(),
                arg: vec![],
                nonce: None,
                sender_info: None,
            },
            EnvelopeContent::ReadState {
                ingress_expiry: 1,
                sender: Principal::anonymous(),
                paths: vec![vec!["request_status".into(), vec![9u8; 32].into()], vec!["time".into()]],
            },
        ];
        for (content, kind) in contents.iter().zip([Kind::Call, Kind::Query, Kind::ReadState]) {
            let env = ic_transport_types::Envelope {
                content: std::borrow::Cow::Borrowed(content),
                sender_pubkey: None,
                sender_sig: None,
                sender_delegation: None,
            };
            let req = Request::parse(&env.encode_bytes(), kind).unwrap();
            assert_eq!(req.request_id, *content.to_request_id(), "{kind:?}");
            assert_eq!(req.sender, *content.sender());
        }
    }

    #[test]
    fn malformed_envelopes_are_refused_with_a_reason() {
        assert!(Request::parse(b"not cbor", Kind::Call).unwrap_err().0.contains("CBOR"));
        let content = ic_transport_types::EnvelopeContent::ReadState { ingress_expiry: 1, sender: Principal::anonymous(), paths: vec![] };
        let env = ic_transport_types::Envelope {
            content: std::borrow::Cow::Borrowed(&content),
            sender_pubkey: None,
            sender_sig: None,
            sender_delegation: None,
        };
        let e = Request::parse(&env.encode_bytes(), Kind::Call).unwrap_err();
        assert!(e.0.contains("takes `call` requests"), "{e}");
        let big = vec![0u8; MAX_REQUEST_BYTES + 1];
        assert!(Request::parse(&big, Kind::Call).unwrap_err().0.contains("limit"));
    }

    #[test]
    fn expiry_window_is_enforced() {
        let content = ic_transport_types::EnvelopeContent::ReadState { ingress_expiry: 1_000, sender: Principal::anonymous(), paths: vec![] };
        let env = ic_transport_types::Envelope {
            content: std::borrow::Cow::Borrowed(&content),
            sender_pubkey: None,
            sender_sig: None,
            sender_delegation: None,
        };
        let req = Request::parse(&env.encode_bytes(), Kind::ReadState).unwrap();
        assert!(req.check_expiry(999).is_ok());
        assert!(req.check_expiry(1_000).is_ok());
        let e = req.check_expiry(1_001).unwrap_err();
        assert!(e.0.starts_with("Invalid request expiry: "), "{e}");
        // Further ahead than five minutes (plus drift) is refused too.
        assert!(req.check_expiry(0).is_ok() == (1_000 <= MAX_INGRESS_TTL_NS + PERMITTED_DRIFT_NS));
        let mut late = req.clone();
        late.ingress_expiry = 10 + MAX_INGRESS_TTL_NS + PERMITTED_DRIFT_NS + 1;
        assert!(late.check_expiry(10).is_err());
        late.ingress_expiry -= 1;
        assert!(late.check_expiry(10).is_ok());
    }
}
