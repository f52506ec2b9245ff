//! A bounded, write-once map from a service and method to a value, read
//! on every call without a lock or an allocation.
//!
//! Layers that keep state per method (the per-method breaker) would
//! otherwise take a lock shared by every connection on each call and grow
//! with every new method name a peer or a caller makes up. This is a fixed
//! array of write-once slots, open-addressed by a hash of the two names:
//! a lookup reads slots (an acquire load each) and compares names; only
//! the first call of a method writes, into an empty slot. Past its
//! capacity, methods share one overflow value.

use std::sync::OnceLock;

use faststr::FastStr;

/// A service/method pair's value, made on first use.
pub(crate) struct MethodMap<V> {
    slots: Box<[OnceLock<(FastStr, FastStr, V)>]>,
    other: OnceLock<V>,
}

impl<V> MethodMap<V> {
    /// A map that holds at most `max_methods` pairs before they share the
    /// overflow value.
    pub(crate) fn new(max_methods: usize) -> MethodMap<V> {
        // Twice the entries, so that probe runs stay short when full.
        let n = max_methods.max(1).saturating_mul(2).next_power_of_two();
        MethodMap {
            slots: (0..n).map(|_| OnceLock::new()).collect(),
            other: OnceLock::new(),
        }
    }

    /// The value of `service` and `method`, made by `make` on first use;
    /// `None` as the key of the overflow value, once the map is full.
    pub(crate) fn get_or_insert_with(
        &self,
        service: &FastStr,
        method: &FastStr,
        make: impl Fn(Option<(&FastStr, &FastStr)>) -> V,
    ) -> &V {
        let mask = self.slots.len() - 1;
        let start = hash(service, method) as usize;
        // Probing stops after half the slots: the map then counts as full
        // for this key even if a far slot is free, which bounds a miss.
        for i in 0..self.slots.len() / 2 {
            let slot = &self.slots[start.wrapping_add(i) & mask];
            let (s, m, v) = match slot.get() {
                Some(e) => e,
                None => slot.get_or_init(|| {
                    (
                        service.clone(),
                        method.clone(),
                        make(Some((service, method))),
                    )
                }),
            };
            if m == method && s == service {
                return v;
            }
        }
        self.other.get_or_init(|| make(None))
    }

    /// Every pair made so far and its value, then the overflow value.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Option<(&FastStr, &FastStr)>, &V)> {
        self.slots
            .iter()
            .filter_map(OnceLock::get)
            .map(|(s, m, v)| (Some((s, m)), v))
            .chain(self.other.get().map(|v| (None, v)))
    }
}

impl<V> std::fmt::Debug for MethodMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodMap")
            .field("methods", &self.iter().count())
            .finish()
    }
}

/// FNV-1a over the service, a separator and the method: a few cycles per
/// byte, and names are short.
pub(crate) fn hash(service: &str, method: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in service.bytes().chain([0xff]).chain(method.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_again_and_bounded() {
        let t: MethodMap<String> = MethodMap::new(4);
        let make = |k: Option<(&FastStr, &FastStr)>| match k {
            Some((s, m)) => format!("{s}.{m}"),
            None => "other".to_string(),
        };
        let (svc, other_svc) = (FastStr::new("svc"), FastStr::new("svc2"));
        let a = t.get_or_insert_with(&svc, &"a".into(), make) as *const String;
        assert_eq!(a, t.get_or_insert_with(&svc, &"a".into(), make) as *const _);
        assert_eq!(
            t.get_or_insert_with(&other_svc, &"a".into(), make),
            "svc2.a"
        );
        for i in 0..100 {
            let v = t.get_or_insert_with(&svc, &FastStr::new(format!("m{i}")), make);
            assert!(v.starts_with("svc.m") || v == "other", "{v}");
        }
        let named = t.iter().filter(|(k, _)| k.is_some()).count();
        assert!(named <= 8, "{named} values past a bound of 4 methods");
        assert_eq!(t.iter().filter(|(k, _)| k.is_none()).count(), 1);
        // Once full, a known method is still found under its own name.
        assert_eq!(t.get_or_insert_with(&svc, &"a".into(), make), "svc.a");
        assert_eq!(
            t.get_or_insert_with(&svc, &"not-there".into(), make),
            "other"
        );
    }
}
