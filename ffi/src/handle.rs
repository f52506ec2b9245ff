//! Handles: what C holds in place of a pointer to a Rust object, so that a
//! freed, stale, mistyped or made-up handle is refused, never dereferenced.
//!
//! A handle's bits are `tag << 56 | generation << 32 | index`: the index of a
//! slot in the registry of its type, the generation that slot had when the
//! object went in, and a tag naming the type. Freeing an object bumps its
//! slot's generation, so every later use of the old handle, on any thread,
//! finds a generation that does not match and gets an error. C sees an
//! opaque pointer type per kind (`weft_client *`, ...) and never looks
//! inside: nothing Weft hands out is a real address, so a use after free
//! cannot read freed memory, which is what lets a sanitizer-built C program
//! test it. (The generation has 24 bits: a handle kept across 16 million
//! reuses of its slot could match again; a freed handle is refused in every
//! other case.)

use std::sync::Arc;

use parking_lot::RwLock;
use weft_core::Status;

// Handles are 64-bit: tag, generation and index share one pointer.
#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "weft-ffi needs a 64-bit target: handles pack tag, generation and index into a pointer"
);

const GEN_MASK: u32 = 0x00ff_ffff;

/// Why a handle was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The pointer was null.
    Null,
    /// Not a handle of this kind at all (another kind, or made up).
    Invalid,
    /// A handle of this kind that was freed (or, for a responder, answered).
    Stale,
}

impl Refused {
    pub(crate) fn status(self, kind: &str) -> Status {
        match self {
            Refused::Null => Status::invalid_argument(format!("the {kind} handle is null")),
            Refused::Invalid => {
                Status::invalid_argument(format!("not a {kind} handle (another kind, or garbage)"))
            }
            Refused::Stale => Status::new(
                weft_core::Code::FailedPrecondition,
                format!("the {kind} handle was already freed or used up"),
            ),
        }
    }
}

struct Slot<T> {
    generation: u32,
    value: Option<Arc<T>>,
}

struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

/// The live objects of one kind.
pub(crate) struct Registry<T> {
    tag: u8,
    kind: &'static str,
    inner: RwLock<Slots<T>>,
}

impl<T> Registry<T> {
    /// A registry whose handles carry `tag` (unique per kind, non-zero).
    pub(crate) const fn new(tag: u8, kind: &'static str) -> Self {
        Registry {
            tag,
            kind,
            inner: RwLock::new(Slots {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    /// How many objects are registered.
    pub(crate) fn live(&self) -> usize {
        let s = self.inner.read();
        s.slots.len() - s.free.len()
    }

    /// The kind's name, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        self.kind
    }

    /// Register `value`; returns its handle's bits (never zero).
    pub(crate) fn insert(&self, value: Arc<T>) -> usize {
        let mut s = self.inner.write();
        let index = match s.free.pop() {
            Some(i) => {
                s.slots[i as usize].value = Some(value);
                i
            }
            None => {
                let i = u32::try_from(s.slots.len()).expect("fewer than 2^32 live handles");
                s.slots.push(Slot {
                    generation: 1,
                    value: Some(value),
                });
                i
            }
        };
        let generation = s.slots[index as usize].generation;
        (usize::from(self.tag) << 56) | ((generation as usize) << 32) | index as usize
    }

    fn locate(&self, bits: usize) -> Result<(usize, u32), Refused> {
        if bits == 0 {
            return Err(Refused::Null);
        }
        if bits >> 56 != usize::from(self.tag) {
            return Err(Refused::Invalid);
        }
        let generation = ((bits >> 32) as u32) & GEN_MASK;
        Ok(((bits & 0xffff_ffff), generation))
    }

    /// The object behind `bits`.
    pub(crate) fn get(&self, bits: usize) -> Result<Arc<T>, Refused> {
        let (index, generation) = self.locate(bits)?;
        let s = self.inner.read();
        let slot = s.slots.get(index).ok_or(Refused::Invalid)?;
        if generation == 0 || generation > slot.generation {
            return Err(Refused::Invalid);
        }
        match &slot.value {
            Some(v) if slot.generation == generation => Ok(v.clone()),
            _ => Err(Refused::Stale),
        }
    }

    /// Take the object behind `bits` out: the handle is stale from now on.
    pub(crate) fn remove(&self, bits: usize) -> Result<Arc<T>, Refused> {
        let (index, generation) = self.locate(bits)?;
        let mut s = self.inner.write();
        let slot = s.slots.get_mut(index).ok_or(Refused::Invalid)?;
        if generation == 0 || generation > slot.generation {
            return Err(Refused::Invalid);
        }
        if slot.generation != generation || slot.value.is_none() {
            return Err(Refused::Stale);
        }
        let value = slot.value.take().expect("checked above");
        // Skip generation 0, which no handle carries.
        slot.generation = match (slot.generation + 1) & GEN_MASK {
            0 => 1,
            g => g,
        };
        s.free.push(index as u32);
        Ok(value)
    }
}

/// Gives an opaque C type (declared outside the macro, where cbindgen sees
/// it) a registry and conversions between the C pointer and the object.
macro_rules! handle_type {
    ($c:ident, $inner:ty, $registry:ident, $tag:expr, $kind:expr) => {
        pub(crate) static $registry: $crate::handle::Registry<$inner> =
            $crate::handle::Registry::new($tag, $kind);

        impl $c {
            /// Register `value` and return its handle.
            pub(crate) fn register(value: std::sync::Arc<$inner>) -> *mut $c {
                std::ptr::without_provenance_mut($registry.insert(value))
            }

            /// The object behind `p`, or the error C gets.
            #[allow(dead_code)]
            pub(crate) fn get(p: *const $c) -> Result<std::sync::Arc<$inner>, weft_core::Status> {
                $registry
                    .get(p.addr())
                    .map_err(|r| r.status($registry.kind()))
            }

            /// Unregister the object behind `p`.
            pub(crate) fn take(p: *const $c) -> Result<std::sync::Arc<$inner>, weft_core::Status> {
                $registry
                    .remove(p.addr())
                    .map_err(|r| r.status($registry.kind()))
            }
        }
    };
}

pub(crate) use handle_type;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_and_foreign_handles_are_refused() {
        let a: Registry<u32> = Registry::new(1, "a");
        let b: Registry<u32> = Registry::new(2, "b");
        let h = a.insert(Arc::new(7));
        assert_eq!(*a.get(h).unwrap(), 7);
        assert_eq!(b.get(h).unwrap_err(), Refused::Invalid);
        assert_eq!(a.get(0).unwrap_err(), Refused::Null);
        assert_eq!(a.get(h + 1).unwrap_err(), Refused::Invalid);
        assert_eq!(*a.remove(h).unwrap(), 7);
        assert_eq!(a.get(h).unwrap_err(), Refused::Stale);
        assert_eq!(a.remove(h).unwrap_err(), Refused::Stale);
        // The slot is reused under a new generation; the old handle stays dead.
        let h2 = a.insert(Arc::new(8));
        assert_ne!(h, h2);
        assert_eq!(a.get(h).unwrap_err(), Refused::Stale);
        assert_eq!(*a.get(h2).unwrap(), 8);
        // A generation the slot never had is garbage, not a freed handle.
        assert_eq!(a.get(h2 + (5 << 32)).unwrap_err(), Refused::Invalid);
    }
}
