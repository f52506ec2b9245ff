//! The on-wire sizes of a call's messages, reported by the transport that
//! framed them to whoever observes the call (the metrics layer).
//!
//! Only the transport knows a message's real size: the codec writes the
//! frame, and a layer above sees the message before it is encoded (client)
//! or the answer before it is (server). So an observing layer hands the
//! transport a [`SizeSink`] and the transport reports each frame's length
//! as it writes or delimits it: no second encode, no allocation (a sink is
//! an `Arc` and an index into what it records).
//!
//! - **Client**: the layer sets [`Context::sizes`](crate::Context::sizes)
//!   on the request; the connection reports the request frame it wrote and
//!   the response frame it read (whether that decodes to a message or to
//!   an error), once per attempt.
//! - **Server**: the request context is made by the connection and the
//!   answer is encoded after the layer's future has finished, so the layer
//!   [`offer`]s its sink while the connection is inside its `call` and the
//!   connection [`take`]s it back as `call` returns (the two run one inside
//!   the other on one thread, with nothing in between). The connection then
//!   reports the request frame, and the answer's frame once encoded.

use std::{cell::Cell, fmt, sync::Arc};

/// Records the sizes a transport reports, for the entry `slot` names.
pub trait RecordSizes: Send + Sync + 'static {
    /// A request frame of `bytes` crossed the wire.
    fn request(&self, slot: usize, bytes: usize);
    /// A response frame of `bytes` crossed the wire.
    fn response(&self, slot: usize, bytes: usize);
}

/// Where a transport reports one call's message sizes.
#[derive(Clone)]
pub struct SizeSink {
    to: Arc<dyn RecordSizes>,
    slot: usize,
}

impl SizeSink {
    /// Report to `to`, for its entry `slot`.
    pub fn new(to: Arc<dyn RecordSizes>, slot: usize) -> SizeSink {
        SizeSink { to, slot }
    }

    /// A request frame of `bytes` crossed the wire.
    pub fn request(&self, bytes: usize) {
        self.to.request(self.slot, bytes);
    }

    /// A response frame of `bytes` crossed the wire.
    pub fn response(&self, bytes: usize) {
        self.to.response(self.slot, bytes);
    }
}

impl fmt::Debug for SizeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SizeSink")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

thread_local! {
    static OFFERED: Cell<Option<SizeSink>> = const { Cell::new(None) };
}

/// Offer `sink` to the server connection whose `call` is running on this
/// thread: called by a server-side layer from inside its `Service::call`.
/// Outside a connection's `call`, the next [`take`] (which a connection
/// makes before each call) discards it.
pub fn offer(sink: SizeSink) {
    OFFERED.with(|o| o.set(Some(sink)));
}

/// Take what a layer [`offer`]ed on this thread: for server transports,
/// right before calling their service (to drop a stale offer) and right
/// after.
pub fn take() -> Option<SizeSink> {
    OFFERED.with(Cell::take)
}
