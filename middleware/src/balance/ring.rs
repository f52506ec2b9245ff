//! The hash ring behind consistent hashing.
//!
//! The hash is specified, not `std`'s (whose `DefaultHasher` may change
//! between Rust releases): FNV-1a 64 over the bytes, then murmur3's `fmix64`
//! finalizer, which FNV alone lacks, to spread near-identical inputs such as
//! `host:port#1`, `host:port#2` over the ring. An instance's virtual node `r`
//! sits at the hash of the text `{address}#{r}` (address as `Address`
//! displays it), and [`HashKey::metainfo`] hashes the value's UTF-8 bytes, so
//! any process, in any release or language, puts a key on the same instance.

use std::{fmt, fmt::Write as _, sync::Arc};

use weft_core::{Context, Instance, DEFAULT_WEIGHT};

/// Virtual nodes an instance of default weight gets: enough that load splits
/// within a few percent, few enough that rebuilding on a change is cheap.
const VNODES_PER_DEFAULT_WEIGHT: u64 = 160;
/// Most virtual nodes one instance gets: 100 × the default weight's. Weights
/// come from discovery (etcd, anyone's registration); unbounded, a weight of
/// 10^9 would ask for gigabytes. Past the cap shares are no longer
/// proportional, but an instance 100 × heavier than the default already takes
/// nearly all keys of a small ring.
pub const MAX_VNODES_PER_INSTANCE: u64 = 100 * VNODES_PER_DEFAULT_WEIGHT;
/// Most points on the whole ring (4 MiB of 16-byte points): with many heavy
/// instances every count is scaled down in proportion, so the ring stays
/// cheap to rebuild on each change of the instance set. Every instance of
/// non-zero weight keeps at least one point.
pub const MAX_RING_POINTS: u64 = 1 << 18;

type KeyFn = dyn Fn(&Context) -> Option<u64> + Send + Sync;

/// Takes the consistent-hashing key from a call's context.
#[derive(Clone)]
pub struct HashKey(Arc<KeyFn>);

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey")
    }
}

impl HashKey {
    /// A key computed by `f`.
    pub fn new(f: impl Fn(&Context) -> Option<u64> + Send + Sync + 'static) -> HashKey {
        HashKey(Arc::new(f))
    }

    /// The hash of the metainfo value under `name` (persistent, then
    /// transient): route by user id, tenant, shard key….
    pub fn metainfo(name: &'static str) -> HashKey {
        HashKey::new(move |cx| {
            let m = &cx.metainfo;
            let v = m.persistent.get(name).or_else(|| m.transient.get(name))?;
            Some(hash_bytes(v.as_bytes()))
        })
    }

    /// The key of `cx`, if it has one.
    pub fn key(&self, cx: &Context) -> Option<u64> {
        (self.0)(cx)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 (Fowler, Noll, Vo; draft-eastlake-fnv).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// murmur3's 64-bit finalizer: every input bit affects every output bit.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The ring's hash of `bytes`: `fmix64(fnv1a64(bytes))`, the same in every
/// process and release (see the module docs).
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    fmix64(fnv1a64(bytes))
}

/// Virtual nodes per endpoint: in proportion to weight, capped per instance
/// and scaled down together to fit the ring.
fn vnodes(weights: impl Iterator<Item = u32> + Clone) -> impl Iterator<Item = u64> {
    let capped = |w: u32| {
        if w == 0 {
            return 0;
        }
        (u64::from(w) * VNODES_PER_DEFAULT_WEIGHT / u64::from(DEFAULT_WEIGHT))
            .clamp(1, MAX_VNODES_PER_INSTANCE)
    };
    let total: u64 = weights.clone().map(capped).sum();
    weights.map(move |w| match capped(w) {
        0 => 0,
        n if total <= MAX_RING_POINTS => n,
        // Cannot overflow: n ≤ MAX_VNODES_PER_INSTANCE, both factors small.
        n => (n * MAX_RING_POINTS / total).max(1),
    })
}

#[derive(Debug, Default)]
pub(crate) struct Ring {
    // (point, endpoint index), sorted by point.
    points: Vec<(u64, usize)>,
}

impl Ring {
    pub(crate) fn build<E>(endpoints: &[E], instance: impl Fn(&E) -> &Instance) -> Ring {
        let counts: Vec<u64> = vnodes(endpoints.iter().map(|e| instance(e).weight)).collect();
        let mut points = Vec::with_capacity(counts.iter().sum::<u64>() as usize);
        let mut name = String::new();
        for (i, (e, &n)) in endpoints.iter().zip(&counts).enumerate() {
            for r in 0..n {
                name.clear();
                // Writing to a String cannot fail.
                let _ = write!(name, "{}#{r}", instance(e).address);
                points.push((hash_bytes(name.as_bytes()), i));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// Endpoint indexes clockwise from `key`'s point, each point once.
    pub(crate) fn walk(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|(p, _)| *p < key);
        let n = self.points.len();
        (0..n).map(move |k| self.points[(start + k) % n].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insts(n: usize) -> Vec<Instance> {
        (0..n)
            .map(|i| Instance::new(format!("127.0.0.1:{}", 1000 + i).parse().unwrap()))
            .collect()
    }

    #[test]
    fn one_instance_leaving_moves_about_one_nth_of_keys() {
        let all = insts(5);
        let ring = Ring::build(&all, |i| i);
        let fewer: Vec<Instance> = all[..4].to_vec();
        let ring2 = Ring::build(&fewer, |i| i);
        let keys = 20_000u64;
        let mut moved = 0;
        for k in 0..keys {
            let h = hash_bytes(&k.to_le_bytes());
            let a = &all[ring.walk(h).next().unwrap()].address;
            let b = &fewer[ring2.walk(h).next().unwrap()].address;
            if a != b {
                moved += 1;
            }
        }
        // The leaver owned about 1/5 of the keys; only those move.
        let share = moved as f64 / keys as f64;
        assert!((0.14..=0.26).contains(&share), "moved {share}");
    }

    #[test]
    fn weight_zero_owns_no_point() {
        let mut all = insts(3);
        all[1].weight = 0;
        let ring = Ring::build(&all, |i| i);
        assert!((0..1000u64).all(|k| ring.walk(hash_bytes(&k.to_le_bytes())).next() != Some(1)));
    }

    // ===== stable hash and bounded size (issue #10) =====

    fn keyed(v: &str) -> Context {
        let mut cx = Context::default();
        cx.metainfo.persistent.insert("user", v.to_owned());
        cx
    }

    /// Golden values computed outside Rust (a few lines of Python doing
    /// FNV-1a 64 and murmur3's fmix64): a change of hash breaks them, and
    /// with them the promise that a key lands on the same instance in every
    /// process and release.
    #[test]
    fn hash_and_ring_positions_are_fixed() {
        let key = HashKey::metainfo("user");
        assert_eq!(key.key(&keyed("user-1")), Some(0x41a2_fca5_c684_01c5));
        let all = insts(3);
        let ring = Ring::build(&all, |i| i);
        assert_eq!(ring.points.len(), 3 * 160);
        assert_eq!(
            ring.points[..3],
            [
                (0x0039_33b3_8e52_05cb, 0),
                (0x013c_7da7_f482_e135, 2),
                (0x0232_7cd5_1ec0_abd7, 2)
            ]
        );
        let owners: Vec<usize> = (0..12)
            .map(|k| {
                let h = key.key(&keyed(&format!("user-{k}"))).unwrap();
                ring.walk(h).next().unwrap()
            })
            .collect();
        assert_eq!(owners, [0, 1, 0, 2, 1, 1, 0, 0, 1, 1, 0, 2]);
    }

    #[test]
    fn a_huge_weight_builds_a_bounded_ring() {
        let mut all = insts(3);
        for weight in [1_000_000, 1_000_000_000, u32::MAX] {
            all[0].weight = weight;
            let ring = Ring::build(&all, |i| i);
            let cap = (MAX_VNODES_PER_INSTANCE + 2 * 160) as usize;
            assert!(ring.points.len() <= cap, "{}", ring.points.len());
            // Still the heaviest by far, the others keep their share.
            let heavy = ring.points.iter().filter(|(_, i)| *i == 0).count();
            assert_eq!(heavy, MAX_VNODES_PER_INSTANCE as usize);
            assert_eq!(ring.points.len(), heavy + 2 * 160);
        }
    }

    #[test]
    fn many_heavy_instances_fit_the_ring_in_proportion() {
        let mut all = insts(100);
        for (k, i) in all.iter_mut().enumerate() {
            i.weight = if k % 2 == 0 { 1_000_000_000 } else { 10_000 };
        }
        let ring = Ring::build(&all, |i| i);
        assert!(ring.points.len() as u64 <= MAX_RING_POINTS);
        let count = |n| ring.points.iter().filter(|(_, i)| *i == n).count();
        // Both capped alike (10 000 is exactly the cap), scaled alike.
        assert_eq!(count(0), count(1));
        assert!(count(0) > 1000, "{}", count(0));
    }

    #[test]
    fn fnv1a_matches_its_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn set(ports: &[u16], weights: &[u32]) -> Vec<Instance> {
            ports
                .iter()
                .zip(weights.iter().cycle())
                .map(|(p, &w)| {
                    Instance::new(format!("10.0.0.1:{p}").parse().unwrap()).with_weight(w)
                })
                .collect()
        }

        fn owner<'a>(ring: &Ring, set: &'a [Instance], key: u64) -> &'a weft_core::Address {
            &set[ring.walk(key).next().unwrap()].address
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            /// The same set, in any order, maps every key to the same
            /// instance; one instance joining takes keys only for itself
            /// (no key moves between the others), about its share of them.
            #[test]
            fn the_ring_is_stable_and_a_join_moves_only_the_joiners_share(
                ports in prop::collection::hash_set(1u16..60000, 2..10),
                weights in prop::collection::vec(1u32..400, 1..10),
                rotate in any::<prop::sample::Index>(),
                keys in prop::collection::vec(any::<u64>(), 2000),
            ) {
                let ports: Vec<u16> = ports.into_iter().collect();
                let (old, joiner) = ports.split_at(ports.len() - 1);
                let before = set(old, &weights);
                let mut shuffled = before.clone();
                let by = rotate.index(shuffled.len());
                shuffled.rotate_left(by);
                shuffled.reverse();
                let mut after = before.clone();
                after.push(set(joiner, &[200])[0].clone());
                let (r1, r2, r3) = (
                    Ring::build(&before, |i| i),
                    Ring::build(&shuffled, |i| i),
                    Ring::build(&after, |i| i),
                );
                let joined = &after.last().unwrap().address;
                let mut moved = 0usize;
                for &k in &keys {
                    let a = owner(&r1, &before, k);
                    prop_assert_eq!(a, owner(&r2, &shuffled, k), "same set, another order");
                    let b = owner(&r3, &after, k);
                    if a != b {
                        prop_assert_eq!(b, joined, "a key moved between instances that stayed");
                        moved += 1;
                    }
                }
                // Its share of virtual nodes, with room for how unevenly
                // a few hundred points split the circle.
                let total: u32 = after.iter().map(|i| i.weight).sum();
                let share = 200.0 / f64::from(total);
                let got = moved as f64 / keys.len() as f64;
                prop_assert!(
                    (got - share).abs() <= 0.5 * share + 0.03,
                    "a joiner with {share:.3} of the weight took {got:.3} of the keys"
                );
            }
        }
    }
}
