//! The hash ring behind consistent hashing.

use std::{
    fmt,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
};

use weft_core::{Context, Instance, DEFAULT_WEIGHT};

/// Virtual nodes an instance of default weight gets: enough that load splits
/// within a few percent, few enough that rebuilding on a change is cheap.
const VNODES_PER_DEFAULT_WEIGHT: u64 = 160;

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
            Some(hash_of(&v.as_str()))
        })
    }

    /// The key of `cx`, if it has one.
    pub fn key(&self, cx: &Context) -> Option<u64> {
        (self.0)(cx)
    }
}

/// A stable hash (SipHash with fixed keys): the same key lands on the same
/// point in every process.
pub(crate) fn hash_of<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

#[derive(Debug, Default)]
pub(crate) struct Ring {
    // (point, endpoint index), sorted by point.
    points: Vec<(u64, usize)>,
}

impl Ring {
    pub(crate) fn build<E>(endpoints: &[E], instance: impl Fn(&E) -> &Instance) -> Ring {
        let mut points = Vec::new();
        for (i, e) in endpoints.iter().enumerate() {
            let inst = instance(e);
            if inst.weight == 0 {
                continue;
            }
            let vnodes = (u64::from(inst.weight) * VNODES_PER_DEFAULT_WEIGHT
                / u64::from(DEFAULT_WEIGHT))
            .max(1);
            let name = inst.address.to_string();
            for r in 0..vnodes {
                points.push((hash_of(&(name.as_str(), r)), i));
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
            let h = hash_of(&k);
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
        assert!((0..1000u64).all(|k| ring.walk(hash_of(&k)).next() != Some(1)));
    }
}
