//! A certified hash tree kept in stable memory: the set of paths HTTP certification
//! needs, with every node's hash stored, so the root survives an upgrade as it is (no
//! rebuild), an update costs O(depth) map operations, a witness is built from stored
//! nodes, and the heap holds nothing that grows with the data.
//!
//! **What it represents.** A set of label paths (no path a prefix of another), each
//! ending in an empty leaf: exactly the tree `ic_certification::NestedTree` builds with
//! `insert(path, vec![])`. Witnesses are `ic_certification::HashTree`s that verify like
//! the reference's: a present path is `Found(leaf "")`, an absent one provably `Absent`.
//!
//! **Shape.** The IC's hash trees leave the shape of the forks inside a set of sibling
//! labels free, as long as an in-order walk meets the labels sorted. Here the forks are
//! those of a crit-bit (PATRICIA) trie over each path encoded as bytes in an
//! order-preserving, prefix-free way (a label's `0x00` is `00 FF`, its end `00 01`), so
//! byte order of keys is the order of paths, label by label. The trie's shape depends on
//! the set alone, never on the order of updates: the same paths give the same root.
//! A trie node whose critical bit lies in label `L` is a fork among the siblings at
//! level `L`; a child whose own critical bit lies deeper is wrapped in the labels it
//! shares in between.
//!
//! **Storage.** `leaves`: the encoded paths (a sorted set, for neighbours). `nodes`:
//! one record per internal trie node, keyed by its bit prefix, holding for each child
//! its critical bit, its own hash and its hash as seen from this node (wrapped in the
//! labels between the two levels). The root's child record sits under a reserved key.
//! A node is written only on the path of a change: replacing the `k` paths under one
//! prefix costs `O(k)` writes for them and `O(depth)` for the path above. Keys are
//! `Unbounded` storables: with a 480-byte bound every map node reserved room for its
//! largest key and a response took ~1.7 KB of stable memory; unbounded, ~630 bytes for
//! the same instructions (±2 %).

use std::borrow::Cow;

use ic_certification::{empty, fork, fork_hash, label, labeled_hash, leaf, leaf_hash, pruned, Hash, HashTree};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableBTreeMap, Storable};

/// Longest encoded path (bytes). Longer paths are refused by [`encode`].
pub const MAX_KEY_BYTES: usize = 480;
const LEAF: u16 = u16::MAX;

/// An encoded path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key(pub Vec<u8>);

impl Storable for Key {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
    fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    fn from_bytes(b: Cow<[u8]>) -> Self {
        Key(b.into_owned())
    }
    const BOUND: Bound = Bound::Unbounded;
}

/// An internal node: the first `bits` bits of its keys (the rest of the last byte
/// zero), then `bits` big-endian. `bits == u16::MAX` is the root's record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct NodeKey(Vec<u8>);

impl NodeKey {
    fn of(key: &[u8], bits: usize) -> Self {
        let n = bits.div_ceil(8);
        let mut v = Vec::with_capacity(n + 2);
        v.extend_from_slice(&key[..n]);
        if bits % 8 != 0 {
            v[n - 1] &= 0xffu8 << (8 - bits % 8);
        }
        v.extend_from_slice(&(bits as u16).to_be_bytes());
        NodeKey(v)
    }
    fn root() -> Self {
        NodeKey(LEAF.to_be_bytes().to_vec())
    }
}

impl Storable for NodeKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
    fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    fn from_bytes(b: Cow<[u8]>) -> Self {
        NodeKey(b.into_owned())
    }
    const BOUND: Bound = Bound::Unbounded;
}

/// A child as its parent sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Child {
    /// Its critical bit, or [`LEAF`].
    crit: u16,
    /// Its own hash: a fork's, or the leaf's.
    own: Hash,
    /// Its hash in the parent's set of siblings: `own` wrapped in the labels between.
    wrapped: Hash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NodeRec {
    kids: [Child; 2],
}

const CHILD_BYTES: usize = 66;

impl Storable for NodeRec {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(2 * CHILD_BYTES);
        for c in self.kids {
            v.extend_from_slice(&c.crit.to_be_bytes());
            v.extend_from_slice(&c.own);
            v.extend_from_slice(&c.wrapped);
        }
        v
    }
    fn from_bytes(b: Cow<[u8]>) -> Self {
        let child = |o: usize| Child {
            crit: u16::from_be_bytes([b[o], b[o + 1]]),
            own: b[o + 2..o + 34].try_into().expect("32 bytes"),
            wrapped: b[o + 34..o + 66].try_into().expect("32 bytes"),
        };
        NodeRec { kids: [child(0), child(CHILD_BYTES)] }
    }
    const BOUND: Bound = Bound::Bounded { max_size: 2 * CHILD_BYTES as u32, is_fixed_size: true };
}

/// Encodes a path; `None` if it is longer than [`MAX_KEY_BYTES`].
pub fn encode<L: AsRef<[u8]>>(labels: &[L]) -> Option<Key> {
    let mut v = Vec::new();
    for l in labels {
        for &b in l.as_ref() {
            if b == 0 {
                v.extend_from_slice(&[0, 0xff]);
            } else {
                v.push(b);
            }
        }
        v.extend_from_slice(&[0, 1]);
    }
    (v.len() <= MAX_KEY_BYTES).then_some(Key(v))
}

/// The labels of an encoded path (or of its complete labels, for a prefix), and the
/// byte offset just past each one's end marker.
struct Parsed {
    labels: Vec<Vec<u8>>,
    ends: Vec<usize>,
}

fn parse(key: &[u8]) -> Parsed {
    let (mut labels, mut ends, mut cur) = (Vec::new(), Vec::new(), Vec::new());
    let mut i = 0;
    while i < key.len() {
        if key[i] == 0 {
            let Some(&next) = key.get(i + 1) else { break };
            if next == 1 {
                labels.push(std::mem::take(&mut cur));
                ends.push(i + 2);
            } else {
                cur.push(0);
            }
            i += 2;
        } else {
            cur.push(key[i]);
            i += 1;
        }
    }
    Parsed { labels, ends }
}

impl Parsed {
    /// The level (label index) that bit `bit` of the key lies in.
    fn level_at(&self, bit: usize) -> usize {
        let byte = bit / 8;
        self.ends.partition_point(|&e| e <= byte)
    }
    fn len(&self) -> usize {
        self.labels.len()
    }
    /// `h` wrapped in labels `from..to`.
    fn wrap(&self, from: usize, to: usize, mut h: Hash) -> Hash {
        for j in (from..to).rev() {
            h = labeled_hash(&self.labels[j], &h);
        }
        h
    }
    fn wrap_tree(&self, from: usize, to: usize, mut t: HashTree) -> HashTree {
        for j in (from..to).rev() {
            t = label(self.labels[j].clone(), t);
        }
        t
    }
    /// A child's level: a leaf's is past its last label.
    fn child_level(&self, crit: u16) -> usize {
        if crit == LEAF {
            self.len()
        } else {
            self.level_at(crit as usize)
        }
    }
}

fn bit(key: &[u8], i: usize) -> usize {
    usize::from((key[i / 8] >> (7 - i % 8)) & 1)
}

/// First bit where two different keys differ (keys are prefix-free, so it exists).
fn crit_bit(a: &[u8], b: &[u8]) -> usize {
    let i = a.iter().zip(b).position(|(x, y)| x != y).expect("different prefix-free keys");
    i * 8 + (a[i] ^ b[i]).leading_zeros() as usize
}

fn leaf_own() -> Hash {
    leaf_hash(b"")
}

/// What a subtree is, seen from a parent whose level is above `level`.
struct Sub {
    crit: u16,
    own: Hash,
    /// The subtree's hash at `level` (labels above it shared with the key used).
    at: Hash,
    level: usize,
}

/// The stable hash tree; see the module docs.
pub struct StableHashTree<M: Memory> {
    leaves: StableBTreeMap<Key, (), M>,
    nodes: StableBTreeMap<NodeKey, NodeRec, M>,
}

impl<M: Memory> StableHashTree<M> {
    pub fn init(leaves: M, nodes: M) -> Self {
        StableHashTree { leaves: StableBTreeMap::init(leaves), nodes: StableBTreeMap::init(nodes) }
    }

    fn root(&self) -> Option<Child> {
        self.nodes.get(&NodeKey::root()).map(|r| r.kids[0])
    }

    fn set_root(&mut self, c: Option<Child>) {
        match c {
            Some(c) => {
                self.nodes.insert(NodeKey::root(), NodeRec { kids: [c, c] });
            }
            None => {
                self.nodes.remove(&NodeKey::root());
            }
        }
    }

    /// The root hash (of the empty tree when there are no paths).
    pub fn root_hash(&self) -> Hash {
        self.root().map_or_else(|| empty().digest(), |r| r.wrapped)
    }

    pub fn len(&self) -> u64 {
        self.leaves.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// Internal nodes stored (always `len() - 1` for a non-empty tree).
    pub fn node_count(&self) -> u64 {
        self.nodes.len().saturating_sub(u64::from(self.root().is_some()))
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.leaves.contains_key(key)
    }

    /// The paths under `prefix` (whole labels), in order.
    pub fn keys_under(&self, prefix: &Key) -> Vec<Key> {
        self.leaves.range(prefix.clone()..).map(|e| e.key().clone()).take_while(|k| k.0.starts_with(&prefix.0)).collect()
    }

    /// Whether any path lies under `prefix`.
    pub fn has_under(&self, prefix: &Key) -> bool {
        self.leaves.range(prefix.clone()..).next().is_some_and(|e| e.key().0.starts_with(&prefix.0))
    }

    /// Descends along `key` from the root through internal nodes whose critical bit is
    /// below `stop`: those nodes (bit, record), and the child reached.
    fn descend(&self, key: &[u8], stop: usize) -> (Vec<(usize, NodeRec)>, Option<Child>) {
        let mut path = Vec::new();
        let mut cur = self.root();
        while let Some(c) = cur {
            if c.crit == LEAF || c.crit as usize >= stop {
                break;
            }
            let b = c.crit as usize;
            let rec = self.nodes.get(&NodeKey::of(key, b)).expect("hash tree: node on a key's path");
            cur = Some(rec.kids[bit(key, b)]);
            path.push((b, rec));
        }
        (path, cur)
    }

    /// Puts `sub` under the last node of `path` on `key`'s side (or at the root), and
    /// rehashes the path upwards.
    fn rehash_up(&mut self, key: &Parsed, raw: &[u8], path: Vec<(usize, NodeRec)>, mut sub: Option<Sub>) {
        for (b, mut rec) in path.into_iter().rev() {
            let level = key.level_at(b);
            let side = bit(raw, b);
            let Some(s) = sub else { unreachable!("only the root may become empty") };
            rec.kids[side] = Child { crit: s.crit, own: s.own, wrapped: key.wrap(level, s.level, s.at) };
            let own = fork_hash(&rec.kids[0].wrapped, &rec.kids[1].wrapped);
            self.nodes.insert(NodeKey::of(raw, b), rec);
            sub = Some(Sub { crit: b as u16, own, at: own, level });
        }
        self.set_root(sub.map(|s| Child { crit: s.crit, own: s.own, wrapped: key.wrap(0, s.level, s.at) }));
    }

    /// Replaces every path under `prefix` (whole labels) with `prefix` + each of
    /// `suffixes`. Costs `O(old + new)` writes plus `O(depth)`.
    pub fn replace_under(&mut self, prefix: &Key, mut keys: Vec<Key>) {
        self.remove_under(prefix);
        keys.sort();
        keys.dedup();
        debug_assert!(keys.iter().all(|k| k.0.starts_with(&prefix.0)));
        if !keys.is_empty() {
            self.insert_run(&keys);
        }
    }

    /// Inserts one path (a no-op if present).
    pub fn insert(&mut self, key: Key) {
        if !self.leaves.contains_key(&key) {
            self.insert_run(std::slice::from_ref(&key));
        }
    }

    /// Removes one path (a no-op if absent).
    pub fn remove(&mut self, key: &Key) {
        if self.leaves.contains_key(key) {
            self.remove_run(&[key.clone()], key.0.len() * 8);
        }
    }

    /// Removes every path under `prefix`.
    pub fn remove_under(&mut self, prefix: &Key) {
        let old = self.keys_under(prefix);
        if !old.is_empty() {
            self.remove_run(&old, prefix.0.len() * 8);
        }
    }

    /// Removes `keys`: sorted, every path there is under a prefix of `bits` bits, and
    /// nothing else is.
    fn remove_run(&mut self, keys: &[Key], bits: usize) {
        for w in keys.windows(2) {
            self.nodes.remove(&NodeKey::of(&w[0].0, crit_bit(&w[0].0, &w[1].0)));
        }
        for k in keys {
            self.leaves.remove(k);
        }
        let raw = &keys[0].0;
        let (mut path, _) = self.descend(raw, bits);
        let Some((b, rec)) = path.pop() else {
            self.set_root(None);
            return;
        };
        // The run's parent goes; its other child takes its place.
        self.nodes.remove(&NodeKey::of(raw, b));
        let p = parse(raw);
        let level = p.level_at(b);
        let other = rec.kids[1 - bit(raw, b)];
        self.rehash_up(&p, raw, path, Some(Sub { crit: other.crit, own: other.own, at: other.wrapped, level }));
    }

    /// Inserts sorted new `keys` that share a prefix no stored path has.
    fn insert_run(&mut self, keys: &[Key]) {
        let first = &keys[0].0;
        let last = &keys[keys.len() - 1].0;
        let pred = self.leaves.range(..keys[0].clone()).next_back().map(|e| e.key().clone());
        let succ = self.leaves.range(keys[keys.len() - 1].clone()..).next().map(|e| e.key().clone());
        let sub = self.build(keys);
        for k in keys {
            self.leaves.insert(k.clone(), ());
        }
        let p = parse(first);
        let run = Sub { crit: sub.0, own: sub.1, at: sub.1, level: p.child_level(sub.0) };
        let nb = match (pred, succ) {
            (None, None) => {
                self.rehash_up(&p, first, Vec::new(), Some(run));
                return;
            }
            (Some(a), None) => (crit_bit(&a.0, first), a),
            (None, Some(z)) => (crit_bit(last, &z.0), z),
            (Some(a), Some(z)) => {
                let (ca, cz) = (crit_bit(&a.0, first), crit_bit(last, &z.0));
                if ca > cz {
                    (ca, a)
                } else {
                    (cz, z)
                }
            }
        };
        let (nb_bit, nb_key) = nb;
        let (path, reached) = self.descend(first, nb_bit);
        let s = reached.expect("a non-empty tree has a child where the run attaches");
        let np = parse(&nb_key.0);
        let level = p.level_at(nb_bit);
        let side = bit(first, nb_bit);
        let mut kids = [Child { crit: 0, own: [0; 32], wrapped: [0; 32] }; 2];
        kids[side] = Child { crit: run.crit, own: run.own, wrapped: p.wrap(level, run.level, run.at) };
        kids[1 - side] = Child { crit: s.crit, own: s.own, wrapped: np.wrap(level, np.child_level(s.crit), s.own) };
        let own = fork_hash(&kids[0].wrapped, &kids[1].wrapped);
        self.nodes.insert(NodeKey::of(first, nb_bit), NodeRec { kids });
        self.rehash_up(&p, first, path, Some(Sub { crit: nb_bit as u16, own, at: own, level }));
    }

    /// Writes the trie of sorted `keys` (internal nodes only); returns its root's
    /// critical bit and own hash.
    fn build(&mut self, keys: &[Key]) -> (u16, Hash) {
        if keys.len() == 1 {
            return (LEAF, leaf_own());
        }
        // The split of a run is the one adjacent pair that differs first.
        let (mut at, mut b) = (0, usize::MAX);
        for (i, w) in keys.windows(2).enumerate() {
            let c = crit_bit(&w[0].0, &w[1].0);
            if c < b {
                (at, b) = (i, c);
            }
        }
        let (lo, hi) = keys.split_at(at + 1);
        let (pl, ph) = (parse(&lo[0].0), parse(&hi[0].0));
        let level = pl.level_at(b);
        let (lc, lown) = self.build(lo);
        let (hc, hown) = self.build(hi);
        let kids = [
            Child { crit: lc, own: lown, wrapped: pl.wrap(level, pl.child_level(lc), lown) },
            Child { crit: hc, own: hown, wrapped: ph.wrap(level, ph.child_level(hc), hown) },
        ];
        let own = fork_hash(&kids[0].wrapped, &kids[1].wrapped);
        self.nodes.insert(NodeKey::of(&lo[0].0, b), NodeRec { kids });
        (b as u16, own)
    }

    /// The stored paths just before and after `key` (which need not be stored).
    pub fn neighbours(&self, key: &Key) -> (Option<Key>, Option<Key>) {
        let before = self.leaves.range(..key.clone()).next_back().map(|e| e.key().clone());
        let after = self.leaves.range(key.clone()..).find(|e| e.key() != key).map(|e| e.key().clone());
        (before, after)
    }

    /// A witness revealing stored paths `keys` (others ignored) and, for each of
    /// `absent`, the neighbours that prove it absent (or present, if it is).
    pub fn witness(&self, keys: &[Key], absent: &[Key]) -> HashTree {
        let mut reveal: Vec<Key> = keys.iter().filter(|k| self.leaves.contains_key(k)).cloned().collect();
        for a in absent {
            let (x, y) = self.neighbours(a);
            reveal.extend(x);
            reveal.extend(y);
            if self.leaves.contains_key(a) {
                reveal.push(a.clone());
            }
        }
        reveal.sort();
        reveal.dedup();
        match self.root() {
            None => empty(),
            Some(r) if reveal.is_empty() => pruned(r.wrapped),
            Some(r) => {
                let refs: Vec<&[u8]> = reveal.iter().map(|k| k.0.as_slice()).collect();
                self.witness_child(r, 0, &refs)
            }
        }
    }

    /// The witness of `child`, seen at `level`, revealing `keys` (non-empty, all in it).
    fn witness_child(&self, child: Child, level: usize, keys: &[&[u8]]) -> HashTree {
        let p = parse(keys[0]);
        if child.crit == LEAF {
            return p.wrap_tree(level, p.len(), leaf(Vec::new()));
        }
        let b = child.crit as usize;
        let inner = p.level_at(b);
        let rec = self.nodes.get(&NodeKey::of(keys[0], b)).expect("hash tree: node on a key's path");
        let split = keys.partition_point(|k| bit(k, b) == 0);
        let (lo, hi) = keys.split_at(split);
        let side = |s: usize, ks: &[&[u8]]| {
            if ks.is_empty() {
                pruned(rec.kids[s].wrapped)
            } else {
                self.witness_child(rec.kids[s], inner, ks)
            }
        };
        p.wrap_tree(level, inner, fork(side(0, lo), side(1, hi)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_orders_like_labels_and_is_prefix_free() {
        let a = encode(&[b"1".as_slice(), b"x"]).unwrap();
        let b = encode(&[b"10".as_slice(), b"x"]).unwrap();
        let c = encode(&[b"1\0".as_slice(), b"x"]).unwrap();
        let d = encode(&[b"".as_slice(), b"x"]).unwrap();
        assert!(d < a && a < c && c < b, "'' < '1' < '1\\0' < '10'");
        let p = parse(&c.0);
        assert_eq!(p.labels, vec![b"1\0".to_vec(), b"x".to_vec()]);
        assert_eq!(p.ends, vec![5, 8]);
        assert_eq!(p.level_at(0), 0);
        assert_eq!(p.level_at(39), 0);
        assert_eq!(p.level_at(40), 1);
    }

    use std::collections::BTreeSet;

    use ic_certification::{AsHashTree, HashTreeNode, LookupResult, NestedTree, SubtreeLookupResult};
    use ic_stable_structures::VectorMemory;
    use proptest::prelude::*;

    type Path = Vec<Vec<u8>>;
    /// Ends every path: never inside one, so no path is a prefix of another.
    const END: &[u8] = b"\xfe<$>";

    fn new_tree() -> StableHashTree<VectorMemory> {
        StableHashTree::init(VectorMemory::default(), VectorMemory::default())
    }

    fn key(p: &[Vec<u8>]) -> Key {
        encode(p).unwrap()
    }

    fn pruned_count(t: &HashTreeNode) -> usize {
        match t {
            HashTreeNode::Pruned(_) => 1,
            HashTreeNode::Fork(lr) => pruned_count(&lr.0) + pruned_count(&lr.1),
            HashTreeNode::Labeled(_, t) => pruned_count(t),
            _ => 0,
        }
    }

    /// Every property, against the set of paths the tree should hold and
    /// ic-certification's own `NestedTree` holding the same set.
    fn check(tree: &StableHashTree<VectorMemory>, set: &BTreeSet<Path>, absent: &[Path]) {
        let root = tree.root_hash();
        let mut reference: NestedTree<Vec<u8>, Vec<u8>> = NestedTree::default();
        for p in set {
            reference.insert(p, Vec::new());
        }
        let keys: Vec<Key> = set.iter().map(|p| key(p)).collect();
        // Fully revealed: the same paths as the reference, and hashing to our root.
        let full = tree.witness(&keys, &[]);
        assert_eq!(full.digest(), root);
        let ours: BTreeSet<Path> =
            full.list_paths().into_iter().map(|p| p.into_iter().map(|l| l.as_bytes().to_vec()).collect()).collect();
        let theirs: BTreeSet<Path> = reference
            .as_hash_tree()
            .list_paths()
            .into_iter()
            .map(|p| p.into_iter().map(|l| l.as_bytes().to_vec()).collect())
            .collect();
        assert_eq!(ours, theirs);
        assert_eq!(&ours, set);
        assert_eq!(tree.len(), set.len() as u64);
        assert_eq!(tree.node_count(), (set.len() as u64).saturating_sub(1), "no stale or missing nodes");
        // The shape depends on the set alone: a tree built in one go has the same root.
        let mut fresh = new_tree();
        fresh.replace_under(&Key(Vec::new()), keys.clone());
        assert_eq!(fresh.root_hash(), root, "same paths, same root, whatever the history");
        if set.is_empty() {
            assert_eq!(root, reference.root_hash());
        }
        for (p, k) in set.iter().zip(&keys) {
            let w = tree.witness(std::slice::from_ref(k), &[]);
            assert_eq!(w.digest(), root);
            assert_eq!(w.lookup_path(p), LookupResult::Found(b""));
            assert!(pruned_count(w.as_ref()) <= 64, "a witness of one path stays small");
        }
        // (The empty path names the whole tree: always there.)
        for a in absent.iter().filter(|a| !a.is_empty()) {
            let w = tree.witness(&[], &[key(a)]);
            assert_eq!(w.digest(), root);
            let expect_present = set.iter().any(|p| p.starts_with(a));
            match w.lookup_subtree(a) {
                SubtreeLookupResult::Found(_) => assert!(expect_present, "{a:?} found but not stored"),
                SubtreeLookupResult::Absent => {
                    assert!(!expect_present);
                    assert!(matches!(reference.witness(a).lookup_subtree(a), SubtreeLookupResult::Absent));
                }
                SubtreeLookupResult::Unknown => panic!("{a:?}: absence not proven"),
            }
        }
    }

    fn label_s() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![0u8, 1, 0xff, b'a', b'b', b'<']), 0..4)
    }

    fn path_s() -> impl Strategy<Value = Path> {
        prop::collection::vec(label_s(), 0..4).prop_map(|mut p| {
            p.push(END.to_vec());
            p
        })
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Path),
        Remove(Path),
        /// Replace everything under a two-label prefix.
        Replace(Vec<u8>, Vec<u8>, Vec<Path>),
    }

    fn op_s() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => path_s().prop_map(Op::Insert),
            1 => path_s().prop_map(Op::Remove),
            1 => (label_s(), label_s(), prop::collection::vec(path_s(), 0..12)).prop_map(|(a, b, s)| Op::Replace(a, b, s)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn matches_the_reference_tree(ops in prop::collection::vec(op_s(), 1..40), absent in prop::collection::vec(prop::collection::vec(label_s(), 0..5), 0..8)) {
            let mut tree = new_tree();
            let mut set: BTreeSet<Path> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(p) => {
                        tree.insert(key(&p));
                        set.insert(p);
                    }
                    Op::Remove(p) => {
                        tree.remove(&key(&p));
                        set.remove(&p);
                    }
                    Op::Replace(a, b, suffixes) => {
                        let prefix = vec![a, b];
                        set.retain(|p| !p.starts_with(&prefix));
                        let mut keys = Vec::new();
                        for s in suffixes {
                            let p: Path = prefix.iter().cloned().chain(s).collect();
                            keys.push(key(&p));
                            set.insert(p);
                        }
                        tree.replace_under(&key(&prefix), keys);
                    }
                }
            }
            // Stored paths, their prefixes and strangers.
            let mut probes = absent;
            probes.extend(set.iter().take(3).map(|p| p[..p.len() - 1].to_vec()));
            probes.extend(set.iter().take(3).map(|p| { let mut q = p.clone(); q.last_mut().unwrap().push(b'x'); q }));
            check(&tree, &set, &probes);
        }
    }

    #[test]
    fn empty_tree_and_single_path() {
        let mut t = new_tree();
        check(&t, &BTreeSet::new(), &[vec![b"a".to_vec()]]);
        let p = vec![b"http".to_vec(), b"".to_vec(), END.to_vec()];
        t.insert(key(&p));
        check(&t, &BTreeSet::from([p.clone()]), &[vec![b"http".to_vec(), b"x".to_vec()], vec![]]);
        t.remove(&key(&p));
        check(&t, &BTreeSet::new(), &[]);
        assert_eq!(t.nodes.len(), 0, "nothing left behind");
    }
}
