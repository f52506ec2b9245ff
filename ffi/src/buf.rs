//! Byte buffers handed to C: a view `(data, len)` plus the handle of what
//! keeps the bytes alive, freed with `weft_bytes_free`.

use std::{ffi::c_void, sync::Arc};

use bytes::Bytes;

use crate::{error::quiet, handle::handle_type};

/// What keeps a `weft_bytes` view alive (internal: C only passes it
/// back through `weft_bytes_free`).
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct weft_buffer {
    _opaque: [u8; 0],
}

handle_type!(weft_buffer, Bytes, BUFFERS, 0x02, "weft_buffer");

/// Bytes owned by the caller: read `data[0..len]`, then free with
/// `weft_bytes_free`. The bytes stay valid, unchanged, until then, on any
/// thread. Text (a metainfo value, an address) is UTF-8, and is followed by
/// a NUL byte not counted in `len`, so `data` can be read as a C string.
#[repr(C)]
#[derive(Debug)]
pub struct weft_bytes {
    /// The first byte; NULL only when nothing is held.
    pub data: *const u8,
    /// The number of bytes.
    pub len: usize,
    /// Internal: what keeps the bytes alive.
    pub owner: *mut weft_buffer,
}

impl weft_bytes {
    /// An empty view holding nothing.
    pub(crate) const EMPTY: weft_bytes = weft_bytes {
        data: std::ptr::null(),
        len: 0,
        owner: std::ptr::null_mut(),
    };

    /// Hand `bytes` to C.
    pub(crate) fn of(bytes: Bytes) -> weft_bytes {
        let (data, len) = (bytes.as_ptr(), bytes.len());
        weft_bytes {
            data,
            len,
            owner: weft_buffer::register(Arc::new(bytes)),
        }
    }

    /// Hand `text` to C, NUL-terminated.
    pub(crate) fn text(text: &str) -> weft_bytes {
        let mut v = Vec::with_capacity(text.len() + 1);
        v.extend_from_slice(text.as_bytes());
        v.push(0);
        let mut b = weft_bytes::of(Bytes::from(v));
        b.len -= 1;
        b
    }

    /// Release what `self` holds and empty it.
    pub(crate) fn release(&mut self) {
        let _ = weft_buffer::take(self.owner);
        *self = weft_bytes::EMPTY;
    }
}

/// Free the bytes `b` holds and set its fields to NULL/0, so freeing the
/// same struct twice is harmless. `b` NULL, or an empty or already freed
/// view, is ignored; so is a copy of a view that was freed already (its
/// owner handle is stale). Thread-safe.
#[no_mangle]
pub extern "C" fn weft_bytes_free(b: *mut weft_bytes) {
    quiet((), || {
        if b.is_null() {
            return;
        }
        // SAFETY: not null; the header documents `b` as pointing to a
        // `weft_bytes` the caller owns.
        let b = unsafe { &mut *b };
        b.release();
    })
}

/// Opaque user data passed back to a callback: the caller vouches that it
/// may be used from Weft's threads (the header says so for every callback).
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserData(pub(crate) *mut c_void);

// SAFETY: Weft never dereferences the pointer; it only passes it back to the
// C callback it came with, which the header documents as called from any
// thread: making that safe is the C side's contract.
unsafe impl Send for UserData {}
// SAFETY: as above.
unsafe impl Sync for UserData {}
