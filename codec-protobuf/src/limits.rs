//! Every bound of Weft's gRPC, each a named default with its reason. The
//! connection-level bounds (connections, bytes in flight, timeouts) are the
//! server's [`weft_core::Limits`].

use std::time::Duration;

/// Largest message received, after decompression: 4 MiB, as every gRPC
/// implementation defaults to, so peers agree on what is too large.
pub const DEFAULT_MAX_RECV_MESSAGE: usize = 4 * 1024 * 1024;
/// Largest message sent. grpc-go defaults to unbounded; Weft keeps the
/// receive bound's order of magnitude so a runaway handler fails loudly.
pub const DEFAULT_MAX_SEND_MESSAGE: usize = 16 * 1024 * 1024;
/// Streams one client may have open on a server connection. grpc-go and
/// tonic leave it unbounded; 1024 is far past what one connection uses and
/// bounds what one peer can make the server hold.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Size of one request's headers, HPACK-decoded: 16 KiB, as tonic; grpc-go
/// allows 16 MiB, which lets one peer make every stream cost that much. It
/// also bounds a CONTINUATION flood: h2 stops buffering past it.
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// Streams a peer may open and reset before the server accepted them: the
/// HTTP/2 rapid-reset attack (CVE-2023-44487) opens and resets thousands;
/// past this the connection is closed with ENHANCE_YOUR_CALM.
pub const DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server may reset because the peer misbehaved on them before
/// it closes the connection (the "MadeYouReset" attack): tonic leaves this
/// unbounded; h2's own default.
pub const DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;
/// Flow-control window of one stream: 1 MiB, so one stream can fill a fast
/// link, and one slow stream holds no more than this.
pub const DEFAULT_STREAM_WINDOW: u32 = 1024 * 1024;
/// Flow-control window of a connection: what all its streams together may
/// have unread at the server; with the per-message bound, what one
/// connection costs.
pub const DEFAULT_CONNECTION_WINDOW: u32 = 2 * 1024 * 1024;
/// HTTP/2 frame size: the protocol's default, which every peer accepts.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16 * 1024;
/// Bytes queued to send on one stream before its producer waits.
pub const DEFAULT_MAX_SEND_BUFFER: usize = 1024 * 1024;
/// Interval of keepalive pings on an idle connection: 2 hours, gRPC's
/// client default; a server or client with stricter needs shortens it.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2 * 3600);
/// Time a keepalive ping has to be answered before the connection is closed.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The bounds of one gRPC server or client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcLimits {
    /// Largest received message, after decompression. Default 4 MiB.
    pub max_recv_message: usize,
    /// Largest sent message. Default 16 MiB.
    pub max_send_message: usize,
    /// Concurrent streams per connection (server: what a client may open).
    /// Default 1024.
    pub max_concurrent_streams: u32,
    /// HPACK-decoded size of one header list. Default 16 KiB.
    pub max_header_list_size: u32,
    /// Streams reset by the peer before being accepted. Default 20.
    pub max_pending_accept_reset_streams: usize,
    /// Streams reset by us for the peer's errors. Default 1024.
    pub max_local_error_reset_streams: usize,
    /// Per-stream window. Default 1 MiB.
    pub stream_window: u32,
    /// Per-connection window. Default 2 MiB.
    pub connection_window: u32,
    /// HTTP/2 frame size. Default 16 KiB.
    pub max_frame_size: u32,
    /// Bytes queued per stream before the producer waits. Default 1 MiB.
    pub max_send_buffer: usize,
    /// Keepalive ping interval on a connection. Default 2 h.
    pub keepalive_interval: Duration,
    /// Time to answer a keepalive ping. Default 20 s.
    pub keepalive_timeout: Duration,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        GrpcLimits {
            max_recv_message: DEFAULT_MAX_RECV_MESSAGE,
            max_send_message: DEFAULT_MAX_SEND_MESSAGE,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_header_list_size: DEFAULT_MAX_HEADER_LIST_SIZE,
            max_pending_accept_reset_streams: DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS,
            max_local_error_reset_streams: DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS,
            stream_window: DEFAULT_STREAM_WINDOW,
            connection_window: DEFAULT_CONNECTION_WINDOW,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_send_buffer: DEFAULT_MAX_SEND_BUFFER,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
        }
    }
}
