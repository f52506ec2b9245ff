//! Sockets: addresses, socket options, a listener and a connector for TCP and
//! Unix domain sockets.

use std::{
    fmt, io,
    net::SocketAddr,
    path::PathBuf,
    pin::Pin,
    str::FromStr,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use socket2::{SockRef, TcpKeepalive};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{tcp, unix, TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream},
};

/// Where a server listens or a client connects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// A host name and port (`localhost:9090`, `svc.internal:9090`),
    /// resolved with the system resolver at every connect, so a name that
    /// moves is followed without the `discovery` feature; each address it
    /// resolves to is tried in turn. A server binds the first.
    Host(String, u16),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "{a}"),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Host(h, port) => write!(f, "{h}:{port}"),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Address::Tcp(a)
    }
}

impl FromStr for Address {
    type Err = io::Error;

    /// `ip:port` or `[ipv6]:port` for TCP, `host:port` for a host name
    /// resolved at connect, `unix:/path` for a Unix socket.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Address::Tcp(a));
        }
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{s:?} is not an address: {why} (expected host:port, ip:port or unix:/path)"
                ),
            )
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port.parse().map_err(|_| {
            bad(&format!(
                "the port {port:?} is not a number from 0 to 65535"
            ))
        })?;
        // A name as DNS spells one (RFC 1123 labels): anything else, such
        // as an IPv6 literal without brackets, is a typo to report now
        // rather than a resolver error at the first call.
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let name = host.strip_suffix('.').unwrap_or(host);
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(bad(&format!("{host:?} is not a host name")));
        }
        Ok(Address::Host(host.to_owned(), port))
    }
}

/// Socket options applied through `socket2` to every accepted or connected socket.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Disable Nagle's algorithm. Default on: RPC frames are small and latency-bound.
    pub nodelay: bool,
    /// TCP keepalive idle time. Default 60 s, so dead peers are found.
    pub keepalive: Option<Duration>,
    /// `SO_SNDBUF`, left to the kernel by default.
    pub send_buffer_size: Option<usize>,
    /// `SO_RCVBUF`, left to the kernel by default.
    pub recv_buffer_size: Option<usize>,
    /// `SO_REUSEPORT` on listeners. Default off.
    pub reuse_port: bool,
    /// Listen backlog. Default 1024.
    pub backlog: u32,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            nodelay: true,
            keepalive: Some(Duration::from_secs(60)),
            send_buffer_size: None,
            recv_buffer_size: None,
            reuse_port: false,
            backlog: 1024,
        }
    }
}

impl SocketOptions {
    fn apply_stream(&self, stream: &TcpStream) -> io::Result<()> {
        stream.set_nodelay(self.nodelay)?;
        let sock = SockRef::from(stream);
        if let Some(idle) = self.keepalive {
            sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
        }
        if let Some(n) = self.send_buffer_size {
            sock.set_send_buffer_size(n)?;
        }
        if let Some(n) = self.recv_buffer_size {
            sock.set_recv_buffer_size(n)?;
        }
        Ok(())
    }
}

/// A connected byte stream, TCP or Unix.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix domain socket.
    Unix(UnixStream),
}

impl Stream {
    /// Split into independently owned read and write halves, without a lock.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Unix(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Unix(r), WriteHalf::Unix(w))
            }
        }
    }

    /// Read without waiting: `Ok(0)` means the peer closed, `WouldBlock` means
    /// nothing to read. Used to detect stale pooled connections.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read(buf),
            Stream::Unix(s) => s.try_read(buf),
        }
    }

    /// The remote address.
    pub fn peer_addr(&self) -> Option<Address> {
        match self {
            Stream::Tcp(s) => s.peer_addr().ok().map(Address::Tcp),
            Stream::Unix(s) => s
                .peer_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| Address::Unix(p.to_owned()))),
        }
    }
}

macro_rules! delegate_read {
    ($ty:ident) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_read(cx, buf),
                    $ty::Unix(s) => Pin::new(s).poll_read(cx, buf),
                }
            }
        }
    };
}

macro_rules! delegate_write {
    ($ty:ident) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_write(cx, buf),
                    $ty::Unix(s) => Pin::new(s).poll_write(cx, buf),
                }
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                    $ty::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                }
            }
            fn is_write_vectored(&self) -> bool {
                true
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_flush(cx),
                    $ty::Unix(s) => Pin::new(s).poll_flush(cx),
                }
            }
            fn poll_shutdown(
                self: Pin<&mut Self>,
                cx: &mut TaskContext<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Tcp(s) => Pin::new(s).poll_shutdown(cx),
                    $ty::Unix(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    };
}

/// The read half of a [`Stream`].
#[derive(Debug)]
pub enum ReadHalf {
    /// TCP.
    Tcp(tcp::OwnedReadHalf),
    /// Unix domain socket.
    Unix(unix::OwnedReadHalf),
}

/// The write half of a [`Stream`].
#[derive(Debug)]
pub enum WriteHalf {
    /// TCP.
    Tcp(tcp::OwnedWriteHalf),
    /// Unix domain socket.
    Unix(unix::OwnedWriteHalf),
}

delegate_read!(Stream);
delegate_write!(Stream);
delegate_read!(ReadHalf);
delegate_write!(WriteHalf);

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener, SocketOptions),
    /// Unix domain socket.
    Unix(UnixListener, PathBuf),
}

/// An error of `what` on `addr` that names both (`AddrInUse` alone leaves a
/// server with several listeners guessing which one), of the same kind.
fn naming<'a>(what: &'static str, addr: &'a Address) -> impl FnOnce(io::Error) -> io::Error + 'a {
    move |e| io::Error::new(e.kind(), format!("{what} {addr}: {e}"))
}

impl Listener {
    /// Bind `addr` with `opts`. A Unix socket path that exists is replaced.
    pub async fn bind(addr: &Address, opts: &SocketOptions) -> io::Result<Listener> {
        match addr {
            Address::Tcp(sa) => {
                let socket = if sa.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.set_reuseaddr(true)?;
                if opts.reuse_port {
                    SockRef::from(&socket).set_reuse_port(true)?;
                }
                socket.bind(*sa).map_err(naming("binding", addr))?;
                let listener = socket
                    .listen(opts.backlog)
                    .map_err(naming("listening on", addr))?;
                Ok(Listener::Tcp(listener, opts.clone()))
            }
            Address::Host(host, port) => {
                let first = tokio::net::lookup_host((host.as_str(), *port))
                    .await?
                    .next()
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("{host} resolves to no address"),
                        )
                    })?;
                Box::pin(Listener::bind(&Address::Tcp(first), opts)).await
            }
            Address::Unix(path) => {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                let listener = UnixListener::bind(path).map_err(naming("binding", addr))?;
                Ok(Listener::Unix(listener, path.clone()))
            }
        }
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> io::Result<Address> {
        match self {
            Listener::Tcp(l, _) => l.local_addr().map(Address::Tcp),
            Listener::Unix(_, p) => Ok(Address::Unix(p.clone())),
        }
    }

    /// Accept one connection, with socket options applied.
    pub async fn accept(&self) -> io::Result<(Stream, Option<Address>)> {
        match self {
            Listener::Tcp(l, opts) => {
                let (s, peer) = l.accept().await?;
                opts.apply_stream(&s)?;
                Ok((Stream::Tcp(s), Some(Address::Tcp(peer))))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), None))
            }
        }
    }

    /// Accept a connection already waiting in the backlog, without waiting
    /// for one: `None` when there is none. Asks the socket itself, not the
    /// reactor, which may not have seen the newest arrivals yet; a server
    /// takes these before it closes its listener, which would reset them.
    pub fn accept_waiting(&self) -> io::Result<Option<(Stream, Option<Address>)>> {
        let waiting = |r: io::Result<(socket2::Socket, socket2::SockAddr)>| match r {
            Ok(pair) => Ok(Some(pair)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        };
        match self {
            Listener::Tcp(l, opts) => {
                let Some((s, peer)) = waiting(SockRef::from(l).accept())? else {
                    return Ok(None);
                };
                s.set_nonblocking(true)?;
                let s = TcpStream::from_std(std::net::TcpStream::from(s))?;
                opts.apply_stream(&s)?;
                Ok(Some((Stream::Tcp(s), peer.as_socket().map(Address::Tcp))))
            }
            Listener::Unix(l, _) => {
                let Some((s, _)) = waiting(SockRef::from(l).accept())? else {
                    return Ok(None);
                };
                s.set_nonblocking(true)?;
                let s = UnixStream::from_std(std::os::unix::net::UnixStream::from(s))?;
                Ok(Some((Stream::Unix(s), None)))
            }
        }
    }
}

/// Opens client connections with a timeout and socket options.
#[derive(Debug, Clone)]
pub struct Connector {
    /// Options for every connection.
    pub options: SocketOptions,
    /// Time allowed for a connection to be established. Default 1 s.
    pub connect_timeout: Duration,
}

impl Default for Connector {
    fn default() -> Self {
        Connector {
            options: SocketOptions::default(),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

impl Connector {
    /// Connect to `addr`.
    pub async fn connect(&self, addr: &Address) -> io::Result<Stream> {
        let fut = async {
            match addr {
                Address::Tcp(sa) => {
                    let s = TcpStream::connect(sa).await?;
                    self.options.apply_stream(&s)?;
                    Ok(Stream::Tcp(s))
                }
                Address::Unix(p) => Ok(Stream::Unix(UnixStream::connect(p).await?)),
                Address::Host(host, port) => {
                    let s = TcpStream::connect((host.as_str(), *port)).await?;
                    self.options.apply_stream(&s)?;
                    Ok(Stream::Tcp(s))
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {addr} timed out"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn parses_addresses() {
        assert_eq!(
            "127.0.0.1:80".parse::<Address>().unwrap(),
            Address::Tcp("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            "unix:/tmp/x.sock".parse::<Address>().unwrap(),
            Address::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            "[::1]:80".parse::<Address>().unwrap(),
            Address::Tcp("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            "svc.internal:9090".parse::<Address>().unwrap(),
            Address::Host("svc.internal".into(), 9090)
        );
        assert_eq!(
            "localhost:9090".parse::<Address>().unwrap().to_string(),
            "localhost:9090"
        );
        for (bad, why) in [
            ("nonsense", "no port"),
            ("localhost:99999", "the port \"99999\""),
            ("localhost:", "the port \"\""),
            (":80", "is not a host name"),
            ("::1:80", "is not a host name"),
            ("bad host:80", "is not a host name"),
            ("-a.b:80", "is not a host name"),
        ] {
            let e = bad.parse::<Address>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn a_host_name_is_resolved_to_bind_and_at_every_connect() {
        let l = Listener::bind(&"localhost:0".parse().unwrap(), &SocketOptions::default())
            .await
            .unwrap();
        let Address::Tcp(bound) = l.local_addr().unwrap() else {
            panic!("a TCP listener")
        };
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = l.accept().await.unwrap();
                s.write_all(b"hi").await.unwrap();
            }
        });
        let addr = Address::Host("localhost".into(), bound.port());
        for _ in 0..2 {
            let mut s = Connector::default().connect(&addr).await.unwrap();
            let mut b = [0u8; 2];
            s.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"hi");
        }
        server.await.unwrap();
        // A name that does not resolve is an error (clients add the
        // address to it), not a hang.
        let nowhere = Address::Host("no-such-host.invalid".into(), 1);
        assert!(Connector::default().connect(&nowhere).await.is_err());
    }

    #[tokio::test]
    async fn tcp_and_unix_round_trip() {
        let dir = std::env::temp_dir().join(format!("weft-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for addr in [
            Address::Tcp("127.0.0.1:0".parse().unwrap()),
            Address::Unix(dir.join("t.sock")),
        ] {
            let l = Listener::bind(&addr, &SocketOptions::default())
                .await
                .unwrap();
            let local = l.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut b = [0u8; 5];
                s.read_exact(&mut b).await.unwrap();
                s.write_all(&b).await.unwrap();
            });
            let mut c = Connector::default().connect(&local).await.unwrap();
            c.write_all(b"hello").await.unwrap();
            let mut b = [0u8; 5];
            c.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"hello");
            server.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_port_in_use_is_named_in_the_error() {
        let first = Listener::bind(&"127.0.0.1:0".parse().unwrap(), &SocketOptions::default())
            .await
            .unwrap();
        let taken = first.local_addr().unwrap();
        let Err(e) = Listener::bind(&taken, &SocketOptions::default()).await else {
            panic!("the port is taken");
        };
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains(&taken.to_string()), "{e}");
    }
}
