//! Bounds on everything the wire and the peers can ask of us.

use std::time::Duration;

/// Largest frame accepted by default: large enough for real payloads, small
/// enough that a hostile length cannot exhaust memory.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
/// Connections a server accepts at once by default, before it stops accepting.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Requests one connection may have in flight at a server before the server
/// stops reading from it (backpressure, not an error).
pub const DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION: usize = 4096;
/// Requests in flight on a whole server, across its connections: past it,
/// connections stop being read until answers are written.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 65_536;
/// Bytes of requests and unwritten answers one connection may hold: four
/// maximal frames, so one large call never waits for another's answer.
pub const DEFAULT_MAX_IN_FLIGHT_BYTES_PER_CONNECTION: usize = 4 * DEFAULT_MAX_FRAME_LEN;
/// Bytes of requests and unwritten answers a whole server may hold: the
/// memory a server spends on frames whatever its peers send or fail to read.
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 1 << 30;
/// Key/values one header may carry (TTHeader, THeader): metainfo in real
/// meshes is tens of entries; thousands only cost the receiver.
pub const DEFAULT_MAX_HEADER_ENTRIES: usize = 1024;
/// Memory one decoded message may claim beyond its frame, as estimated by the
/// decoder from the containers it declares (a compact `list<struct>` costs a
/// byte per element on the wire but a whole struct in memory).
pub const DEFAULT_MAX_DECODED_SIZE: usize = 4 * DEFAULT_MAX_FRAME_LEN;
/// Elements one container may declare; the bytes left in the frame bound it too.
pub const DEFAULT_MAX_CONTAINER_LEN: usize = 1 << 24;
/// Nesting depth of structs and containers, as in Apache Thrift's default
/// recursion limit: deep enough for real schemas, shallow enough for the stack.
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Time a peer has to finish sending a frame it started: defeats slow senders.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a write may take before the connection is considered dead.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a server connection may sit with nothing in flight before it is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Every wire limit in one place, like Apache Thrift's `TConfiguration`.
/// Each violation is a typed error that closes only the offending connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame, in bytes, including transport headers. Default 16 MiB.
    pub max_frame_len: usize,
    /// Connections a server serves at once. Default 10,000.
    pub max_connections: usize,
    /// Requests in flight on one server connection. Default 4096.
    pub max_in_flight_per_connection: usize,
    /// Requests in flight on the whole server. Default 65,536.
    pub max_in_flight: usize,
    /// Bytes of requests and unwritten answers on one server connection.
    /// Default 64 MiB; never less than one frame in effect.
    pub max_in_flight_bytes_per_connection: usize,
    /// Bytes of requests and unwritten answers on the whole server.
    /// Default 1 GiB. Reads are charged as they land, so the server may go
    /// past it by one read (64 KiB) per connection reading at that moment,
    /// plus one frame that one connection at a time may finish; a peer that
    /// is the only holder always proceeds, so no bound can wedge it.
    pub max_in_flight_bytes: usize,
    /// Key/values in one frame header. Default 1024.
    pub max_header_entries: usize,
    /// Estimated in-memory size of one decoded message. Default 64 MiB.
    pub max_decoded_size: usize,
    /// Elements in one list, set or map. Default 2^24.
    pub max_container_len: usize,
    /// Nesting depth of structs in decoding and skipping. Default 64.
    pub max_depth: usize,
    /// Time allowed to receive the rest of a frame once it started. Default 30 s.
    pub read_timeout: Duration,
    /// Time allowed for one write. Default 30 s.
    pub write_timeout: Duration,
    /// Idle time after which a server closes a connection. Default 10 min.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_in_flight_per_connection: DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_bytes_per_connection: DEFAULT_MAX_IN_FLIGHT_BYTES_PER_CONNECTION,
            max_in_flight_bytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
            max_header_entries: DEFAULT_MAX_HEADER_ENTRIES,
            max_decoded_size: DEFAULT_MAX_DECODED_SIZE,
            max_container_len: DEFAULT_MAX_CONTAINER_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
            read_timeout: DEFAULT_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}
