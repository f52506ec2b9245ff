//! etcd: instances stored as JSON under a key prefix, discovery by a prefix
//! watch, registration under a lease kept alive.
//!
//! # Key layout
//!
//! Each instance of a service is one key:
//!
//! ```text
//! <root>/<service>/<instance>   →   {"address":"10.0.0.7:9090","weight":100,"tags":{"zone":"a"}}
//! ```
//!
//! `<root>` is [`EtcdConfig::root`], `/weft/services` by default. `<instance>`
//! is the instance's address as text (`10.0.0.7:9090`, `[::1]:9090`,
//! `unix:/run/echo.sock`), and `<service>` the service name, both with `%`
//! written `%25` and `/` written `%2F` so that each stays one path segment
//! (see [`instance_key`]). The value is a JSON object: `address` (required,
//! as `weft_core::Address` parses it), `weight` (default 100) and `tags`
//! (string to string, default empty). Any program can register by writing
//! such a key, under a lease if it wants crash cleanup.
//!
//! # Kitex-compatible layout
//!
//! [`EtcdConfig::kitex`] reads and writes the layout of Kitex's etcd
//! registry (`github.com/kitex-contrib/registry-etcd`, as of v0.2.6), so that
//! a Kitex client using that registry's resolver finds a Weft server, and a
//! Weft client finds a Kitex server that registered with it:
//!
//! ```text
//! kitex/registry-etcd/<service>/<host:port>   →   {"network":"tcp","address":"10.0.0.7:9090","weight":10,"tags":{"zone":"a"}}
//! ```
//!
//! The root is `kitex/registry-etcd` (no leading `/`, as Kitex writes it).
//! The value adds `network` (`tcp`, or `unix` with the socket's path as
//! `address`), which Kitex's resolver dials with and without which it cannot
//! connect. Reading, a missing or non-positive `weight` is Kitex's default
//! weight, [`KITEX_DEFAULT_WEIGHT`] (10), as Kitex's resolver reads it, and a
//! `null` `tags` (what Kitex writes for a server without tags) is empty; an
//! IPv6 address without brackets (`::1:9090`, as Kitex's registry writes
//! the host it found) is read as `[::1]:9090`. Writing, the weight is the
//! instance's own: Weft's default is 100 and Kitex's 10, so give a Weft
//! server that shares a service with Kitex servers `with_weight(10)` for
//! an even spread. Kitex's resolver reads the prefix on each refresh (it
//! does not watch); its own registry's leases last 60 s, Weft's
//! [`EtcdConfig::lease_ttl`].
//!
//! # Discovery
//!
//! [`EtcdDiscover`] starts one background task per subscribed service (it
//! ends when the service's last receiver is dropped): it reads the prefix
//! (a `GET`), publishes the set, then watches the prefix from the `GET`'s
//! revision + 1, applying every put and delete. When the watch breaks (etcd
//! down, connection lost, compaction) it retries with exponential backoff,
//! and on reconnect does a fresh `GET` and resumes the watch from that
//! revision + 1: no update is lost, and until then the last known set stays
//! published, so calls keep flowing to known instances.
//! An update that would leave no instance at all (every lease expired after
//! a shared outage) keeps the last non-empty set too, unless
//! [`EtcdDiscover::allow_empty`] says otherwise.
//!
//! # Registration
//!
//! [`EtcdRegistry`] implements [`Registry`]: `register` grants a lease of
//! [`EtcdConfig::lease_ttl`], puts the key under it and keeps the lease
//! alive in a background task (re-granting if etcd lost the lease). After
//! each keep-alive it puts the key back under the lease if the key is gone
//! (deleted by hand, lost with an expired lease): a live lease alone does
//! not keep an instance listed. A key under another lease is left alone:
//! another registration owns it.
//!
//! `deregister` stops the keep-alive, deletes the key if it is still under
//! this registration's lease (an etcd transaction: another process on the
//! same address may have taken the key over, and its key stays) and revokes
//! the lease. Each registration has a lease of its own, and registrations
//! and deregistrations of one key on one registry run one at a time, so
//! that no revoke hits the lease a live key sits on.
//!
//! A server that crashes stops its keep-alives, and etcd deletes its key
//! when the lease expires. Dropping the registry stops its keep-alives
//! without deleting anything, exactly as a crash does.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::follow::Followers;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, Txn,
    TxnOp, WatchOptions,
};
use faststr::FastStr;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::{sync::watch, task::JoinHandle};
use weft_core::{
    discover::{Registry, RegistryFuture, DEFAULT_WEIGHT},
    Address, Discover, Instance, Instances, Status,
};

/// The etcd client crate, re-exported so callers name the same version.
pub use etcd_client;

/// Where instances live by default: `/weft/services/<service>/<instance>`.
pub const DEFAULT_ROOT: &str = "/weft/services";
/// Lease time-to-live by default: short enough that a crashed server leaves
/// the set within seconds, long enough to ride out a slow keep-alive.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// How long one etcd request may take by default before it counts as failed.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// First wait before retrying etcd after a failure, by default.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Longest wait between retries by default: bounds how long after etcd comes
/// back a watcher or keep-alive notices.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The key prefix Kitex's etcd registry (`kitex-contrib/registry-etcd`)
/// uses by default.
pub const KITEX_ROOT: &str = "kitex/registry-etcd";
/// The weight Kitex's etcd resolver gives an instance stored without a
/// positive one.
pub const KITEX_DEFAULT_WEIGHT: u32 = 10;

/// How instances are stored: which JSON value goes under each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecordFormat {
    /// Weft's own: `{"address":…,"weight":…,"tags":{…}}`, the address as
    /// `weft_core::Address` writes it. See the [module docs](self).
    #[default]
    Weft,
    /// Kitex's etcd registry's: `{"network":"tcp","address":…,"weight":…,
    /// "tags":{…}}`. See [Kitex-compatible layout](self#kitex-compatible-layout).
    Kitex,
}

/// Settings shared by [`EtcdDiscover`] and [`EtcdRegistry`].
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Key prefix under which services live. Default [`DEFAULT_ROOT`].
    pub root: String,
    /// Lease time-to-live for registrations (whole seconds, at least 1).
    /// Keep-alives go out every third of it. Default 10 s.
    pub lease_ttl: Duration,
    /// Bound on each etcd request. Default 3 s.
    pub request_timeout: Duration,
    /// First retry delay after etcd fails; doubles up to `backoff_max`.
    /// Default 100 ms.
    pub backoff_initial: Duration,
    /// Longest retry delay. Default 1 s.
    pub backoff_max: Duration,
    /// The JSON value stored for an instance. Default
    /// [`RecordFormat::Weft`]; [`EtcdConfig::kitex`] sets
    /// [`RecordFormat::Kitex`].
    pub format: RecordFormat,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            root: DEFAULT_ROOT.to_owned(),
            lease_ttl: DEFAULT_LEASE_TTL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            format: RecordFormat::Weft,
        }
    }
}

impl EtcdConfig {
    /// The layout of Kitex's etcd registry (`kitex-contrib/registry-etcd`):
    /// root [`KITEX_ROOT`] and [`RecordFormat::Kitex`] values, so that Kitex
    /// services and Weft services find each other in one etcd. See
    /// [Kitex-compatible layout](self#kitex-compatible-layout). A Kitex
    /// registry built `WithEtcdServicePrefix(p)` matches
    /// `EtcdConfig::kitex().root(p)`.
    pub fn kitex() -> EtcdConfig {
        EtcdConfig {
            root: KITEX_ROOT.to_owned(),
            format: RecordFormat::Kitex,
            ..EtcdConfig::default()
        }
    }

    /// The same config storing values in `format`.
    #[must_use]
    pub fn format(mut self, format: RecordFormat) -> Self {
        self.format = format;
        self
    }

    /// The same config with `ttl` as lease time-to-live.
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The same config with `root` as key prefix.
    #[must_use]
    pub fn root(mut self, root: impl Into<String>) -> Self {
        self.root = root.into();
        self
    }

    /// The prefix of `service`'s keys, ending in `/`.
    pub fn service_prefix(&self, service: &str) -> String {
        format!("{}/{}/", self.root.trim_end_matches('/'), escape(service))
    }

    fn ttl_secs(&self) -> i64 {
        self.lease_ttl.as_secs().max(1) as i64
    }
}

/// The key of `instance` of `service`: `<root>/<service>/<address>`, each
/// segment with `%` → `%25` and `/` → `%2F`.
pub fn instance_key(config: &EtcdConfig, service: &str, instance: &Instance) -> String {
    format!(
        "{}{}",
        config.service_prefix(service),
        escape(&instance.address.to_string())
    )
}

fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

/// Connect to etcd at `endpoints` (`http://host:port`) with HTTP/2
/// keep-alive pings, so that a silent etcd (paused, partitioned) breaks the
/// watch and the follower reconnects rather than waiting forever. Connecting
/// is lazy: it succeeds while etcd is down, and requests fail until it is up.
pub async fn connect(endpoints: &[impl AsRef<str>]) -> Result<Client, Status> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    Client::connect(endpoints, Some(options))
        .await
        .map_err(|e| unavailable("connecting to etcd", e))
}

fn unavailable(what: &str, e: impl fmt::Display) -> Status {
    Status::unavailable(format!("{what}: {e}"))
}

async fn timed<T, E: fmt::Display>(
    limit: Duration,
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, Status> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(what, e)),
        Err(_) => Err(Status::unavailable(format!(
            "{what}: no answer from etcd in {limit:?}"
        ))),
    }
}

// ===== the stored value =====

/// An instance as stored in etcd (JSON).
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    address: String,
    #[serde(default = "default_weight")]
    weight: u32,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

/// An instance as Kitex's etcd registry stores it (JSON).
#[derive(Debug, Serialize, Deserialize)]
struct KitexRecord {
    #[serde(default)]
    network: String,
    address: String,
    #[serde(default)]
    weight: i64,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

/// The JSON value stored for `instance` in `format`.
pub fn encode_instance_as(format: RecordFormat, instance: &Instance) -> String {
    match format {
        RecordFormat::Weft => encode_instance(instance),
        RecordFormat::Kitex => {
            let (network, address) = match &instance.address {
                Address::Unix(path) => ("unix", path.to_string_lossy().into_owned()),
                other => ("tcp", other.to_string()),
            };
            let record = KitexRecord {
                network: network.to_owned(),
                address,
                weight: i64::from(instance.weight),
                tags: Some(tags_of(instance)),
            };
            serde_json::to_string(&record).expect("a map of strings always serializes")
        }
    }
}

/// The instance a stored JSON value in `format` describes.
pub fn decode_instance_as(format: RecordFormat, value: &[u8]) -> Result<Instance, Status> {
    match format {
        RecordFormat::Weft => decode_instance(value),
        RecordFormat::Kitex => decode_kitex(value),
    }
}

fn tags_of(instance: &Instance) -> BTreeMap<String, String> {
    instance
        .tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn decode_kitex(value: &[u8]) -> Result<Instance, Status> {
    let record: KitexRecord = serde_json::from_slice(value)
        .map_err(|e| Status::invalid_argument(format!("Kitex instance record: {e}")))?;
    let bad = |e: String| Status::invalid_argument(format!("Kitex instance address: {e}"));
    let address = match record.network.as_str() {
        "unix" => {
            if record.address.is_empty() {
                return Err(bad("an empty unix socket path".into()));
            }
            Address::Unix(record.address.into())
        }
        // Kitex's registry writes "tcp"; an empty network is what a
        // hand-written record most likely means.
        "tcp" | "tcp4" | "tcp6" | "" => kitex_tcp_address(&record.address).map_err(bad)?,
        other => return Err(bad(format!("network {other:?} is not tcp or unix"))),
    };
    let weight = match u32::try_from(record.weight) {
        Ok(w) if w > 0 => w,
        _ => KITEX_DEFAULT_WEIGHT,
    };
    let mut instance = Instance::new(address).with_weight(weight);
    instance.tags = record
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (FastStr::new(k), FastStr::new(v)))
        .collect();
    Ok(instance)
}

/// `host:port` as Kitex's registry writes it, which for an IPv6 host is
/// without brackets (`::1:9090`).
fn kitex_tcp_address(text: &str) -> Result<Address, String> {
    if let Ok(a) = text.parse::<std::net::SocketAddr>() {
        return Ok(Address::Tcp(a));
    }
    if let Some((host, port)) = text.rsplit_once(':') {
        if let (Ok(ip), Ok(port)) = (host.parse::<std::net::Ipv6Addr>(), port.parse::<u16>()) {
            return Ok(Address::Tcp((ip, port).into()));
        }
    }
    match text.parse::<Address>() {
        Ok(a @ (Address::Tcp(_) | Address::Host(..))) => Ok(a),
        Ok(other) => Err(format!("{text:?} is {other}, not host:port")),
        Err(e) => Err(format!("{text:?}: {e}")),
    }
}

/// The JSON value stored for `instance` in Weft's format
/// ([`RecordFormat::Weft`]).
pub fn encode_instance(instance: &Instance) -> String {
    let record = Record {
        address: instance.address.to_string(),
        weight: instance.weight,
        tags: tags_of(instance),
    };
    serde_json::to_string(&record).expect("a map of strings always serializes")
}

/// The instance a stored JSON value in Weft's format
/// ([`RecordFormat::Weft`]) describes.
pub fn decode_instance(value: &[u8]) -> Result<Instance, Status> {
    let record: Record = serde_json::from_slice(value)
        .map_err(|e| Status::invalid_argument(format!("instance record: {e}")))?;
    let address: Address = record
        .address
        .parse()
        .map_err(|e| Status::invalid_argument(format!("instance address: {e}")))?;
    let mut instance = Instance::new(address).with_weight(record.weight);
    instance.tags = record
        .tags
        .into_iter()
        .map(|(k, v)| (FastStr::new(k), FastStr::new(v)))
        .collect();
    Ok(instance)
}

// ===== impl EtcdDiscover =====

/// Finds instances in etcd and follows their changes. See the
/// [module docs](self). Cheap to clone; a service's follower stops when its
/// last subscriber is gone, and every follower when the last clone is
/// dropped.
#[derive(Clone)]
pub struct EtcdDiscover {
    inner: Arc<DiscoverInner>,
}

struct DiscoverInner {
    client: Client,
    config: EtcdConfig,
    services: Followers,
    allow_empty: AtomicBool,
}

impl fmt::Debug for EtcdDiscover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdDiscover")
            .field("config", &self.inner.config)
            .field("services", &self.inner.services.names())
            .finish()
    }
}

impl EtcdDiscover {
    /// Discover through `client`.
    ///
    /// Build `client` with HTTP/2 keep-alive, as [`connect`] does
    /// (`ConnectOptions::with_keep_alive` and
    /// `with_keep_alive_while_idle(true)`): it is what ends a watch on a
    /// connection gone silent (a partition, a dead NAT mapping, a hung
    /// etcd). Without it such a watch, and every later request on that
    /// connection, waits forever and changes stop arriving.
    pub fn new(client: Client, config: EtcdConfig) -> EtcdDiscover {
        EtcdDiscover {
            inner: Arc::new(DiscoverInner {
                client,
                config,
                services: Followers::default(),
                allow_empty: AtomicBool::new(false),
            }),
        }
    }

    /// Whether an update that leaves a service with no instances is
    /// published (`true`) or the last non-empty set is kept (`false`, the
    /// default). When every lease expires at once — a shared etcd outage
    /// longer than the TTL — the empty set would send every call to
    /// nowhere, while the last known instances most likely still run. This
    /// is the panic threshold of Kitex and Envoy: rather than balance over
    /// nothing, balance over what was last known. A warning is logged each
    /// time a set is kept. New instances still replace a kept set. Applies
    /// to services subscribed after the call (and through every clone,
    /// which share their followers).
    #[must_use]
    pub fn allow_empty(self, allow: bool) -> EtcdDiscover {
        self.inner.allow_empty.store(allow, Ordering::Relaxed);
        self
    }

    /// The services followed now, sorted: each has a follower task watching
    /// etcd. A follower stops, and its watch ends, once the last receiver
    /// of its service is dropped; subscribing again starts a new one.
    pub fn followed(&self) -> Vec<String> {
        let mut names = self.inner.services.names();
        names.sort();
        names
    }

    /// Connect to etcd at `endpoints` (see [`connect`]) and discover there.
    pub async fn connect(
        endpoints: &[impl AsRef<str>],
        config: EtcdConfig,
    ) -> Result<EtcdDiscover, Status> {
        Ok(EtcdDiscover::new(connect(endpoints).await?, config))
    }

    /// Subscribe to `service` and wait, up to `timeout`, until its instances
    /// have been read from etcd once. A client that starts with this never
    /// sees the empty set a plain [`Discover::subscribe`] shows before the
    /// first read.
    pub async fn subscribe_ready(
        &self,
        service: &str,
        timeout: Duration,
    ) -> Result<watch::Receiver<Instances>, Status> {
        let rx = self.subscribe(service)?;
        if self.inner.services.loaded(service, timeout).await {
            Ok(rx)
        } else {
            Err(Status::unavailable(format!(
                "instances of {service} not read from etcd within {timeout:?}"
            )))
        }
    }
}

impl Discover for EtcdDiscover {
    /// Follow `service`. The first subscription starts the follower task
    /// (so it must be made inside a Tokio runtime); the set is empty until
    /// the first read from etcd completes.
    fn subscribe(&self, service: &str) -> Result<watch::Receiver<Instances>, Status> {
        self.inner.services.subscribe(service, |set, loaded| {
            let follower = Follower {
                client: self.inner.client.clone(),
                config: self.inner.config.clone(),
                service: service.to_owned(),
                prefix: self.inner.config.service_prefix(service),
                set,
                loaded,
                allow_empty: self.inner.allow_empty.load(Ordering::Relaxed),
            };
            Ok(follower.run())
        })
    }
}

/// Follows one service's prefix.
struct Follower {
    client: Client,
    config: EtcdConfig,
    service: String,
    prefix: String,
    set: watch::Sender<Instances>,
    loaded: watch::Sender<bool>,
    /// See [`EtcdDiscover::allow_empty`].
    allow_empty: bool,
}

impl Follower {
    async fn run(mut self) {
        let mut backoff = Backoff::new(&self.config);
        loop {
            let e = self.follow(&mut backoff).await;
            tracing::warn!(
                service = %self.service,
                error = %e,
                "etcd watch broke; keeping the last known instances and retrying"
            );
            backoff.wait().await;
        }
    }

    /// GET the prefix, then watch from the GET's revision + 1 until the
    /// watch breaks; returns why it broke.
    async fn follow(&mut self, backoff: &mut Backoff) -> Status {
        let limit = self.config.request_timeout;
        let got = timed(
            limit,
            "reading instances from etcd",
            self.client
                .get(self.prefix.as_str(), Some(GetOptions::new().with_prefix())),
        )
        .await;
        let got = match got {
            Ok(g) => g,
            Err(e) => return e,
        };
        let revision = got.header().map_or(0, |h| h.revision());
        let mut known: BTreeMap<Vec<u8>, Instance> = BTreeMap::new();
        for kv in got.kvs() {
            if let Some(inst) = self.parse(kv) {
                known.insert(kv.key().to_vec(), inst);
            }
        }
        self.publish(&known);
        self.loaded.send_replace(true);

        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream = match timed(
            limit,
            "watching etcd",
            self.client.watch(self.prefix.as_str(), Some(options)),
        )
        .await
        {
            Ok(s) => s,
            Err(e) => return e,
        };
        backoff.reset();
        loop {
            let msg = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => return Status::unavailable("etcd closed the watch"),
                Err(e) => return unavailable("etcd watch", e),
            };
            if msg.compact_revision() > 0 {
                return Status::unavailable(format!(
                    "etcd compacted past the watch (revision {})",
                    msg.compact_revision()
                ));
            }
            if msg.canceled() {
                return Status::unavailable(format!(
                    "etcd cancelled the watch: {}",
                    msg.cancel_reason()
                ));
            }
            if msg.events().is_empty() {
                continue;
            }
            for ev in msg.events() {
                let Some(kv) = ev.kv() else { continue };
                match ev.event_type() {
                    EventType::Put => match self.parse(kv) {
                        Some(inst) => {
                            known.insert(kv.key().to_vec(), inst);
                        }
                        None => {
                            known.remove(kv.key());
                        }
                    },
                    EventType::Delete => {
                        known.remove(kv.key());
                    }
                }
            }
            self.publish(&known);
        }
    }

    fn parse(&self, kv: &KeyValue) -> Option<Instance> {
        match decode_instance_as(self.config.format, kv.value()) {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!(
                    service = %self.service,
                    key = %String::from_utf8_lossy(kv.key()),
                    error = %e,
                    "ignoring a malformed instance in etcd"
                );
                None
            }
        }
    }

    /// Publish `known` unless it equals what subscribers already have, or
    /// it is empty and empty sets are not allowed (then the last non-empty
    /// set stays).
    fn publish(&self, known: &BTreeMap<Vec<u8>, Instance>) {
        let next: Vec<Instance> = known.values().cloned().collect();
        if next.is_empty() && !self.allow_empty {
            let kept = self.set.borrow().len();
            if kept > 0 {
                tracing::warn!(
                    service = %self.service,
                    kept,
                    "etcd lists no instance; keeping the last known ones (allow_empty is off)"
                );
                return;
            }
        }
        self.set.send_if_modified(|cur| {
            if **cur == *next {
                false
            } else {
                *cur = next.into();
                true
            }
        });
    }
}

/// Exponential backoff between etcd retries.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(config: &EtcdConfig) -> Backoff {
        Backoff {
            initial: config.backoff_initial,
            max: config.backoff_max.max(config.backoff_initial),
            next: config.backoff_initial,
        }
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }
}

// ===== impl EtcdRegistry =====

/// Registers server instances in etcd under leases kept alive. See the
/// [module docs](self). Give it to
/// [`ServerBuilder::register`](weft_core::ServerBuilder::register).
pub struct EtcdRegistry {
    client: Client,
    config: EtcdConfig,
    registered: Mutex<HashMap<String, Registration>>,
    /// One lock per key, held across a whole register or deregister: two
    /// operations on one key that interleaved their grants, puts and revokes
    /// could revoke the lease the key ends up under.
    ops: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct Registration {
    lease: Arc<Mutex<i64>>,
    keeper: JoinHandle<()>,
}

impl Drop for EtcdRegistry {
    fn drop(&mut self) {
        // Like a crash: keys stay until their leases expire.
        for r in self.registered.get_mut().values() {
            r.keeper.abort();
        }
    }
}

impl fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("config", &self.config)
            .field(
                "registered",
                &self.registered.lock().keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl EtcdRegistry {
    /// Register through `client`. Build it with HTTP/2 keep-alive, as
    /// [`connect`] does; see [`EtcdDiscover::new`].
    pub fn new(client: Client, config: EtcdConfig) -> EtcdRegistry {
        EtcdRegistry {
            client,
            config,
            registered: Mutex::new(HashMap::new()),
            ops: Mutex::new(HashMap::new()),
        }
    }

    /// Connect to etcd at `endpoints` (see [`connect`]) and register there.
    pub async fn connect(
        endpoints: &[impl AsRef<str>],
        config: EtcdConfig,
    ) -> Result<EtcdRegistry, Status> {
        Ok(EtcdRegistry::new(connect(endpoints).await?, config))
    }

    /// The lease `instance` of `service` is registered under, if it is.
    pub fn lease_id(&self, service: &str, instance: &Instance) -> Option<i64> {
        let key = instance_key(&self.config, service, instance);
        self.registered.lock().get(&key).map(|r| *r.lease.lock())
    }

    /// Run `op` on `key` with no other register or deregister of `key` in
    /// between.
    async fn exclusive<T>(&self, key: &str, op: impl Future<Output = T>) -> T {
        let lock = self.ops.lock().entry(key.to_owned()).or_default().clone();
        let out = {
            let _held = lock.lock().await;
            op.await
        };
        let mut ops = self.ops.lock();
        // Clones are only made under `ops`: two strong counts (the map's and
        // ours) mean nobody else waits on this key, so forget it.
        if Arc::strong_count(&lock) == 2 {
            ops.remove(key);
        }
        out
    }

    async fn do_register(&self, service: &str, instance: &Instance) -> Result<(), Status> {
        let key = instance_key(&self.config, service, instance);
        self.exclusive(&key, self.register_locked(&key, instance))
            .await
    }

    async fn register_locked(&self, key: &str, instance: &Instance) -> Result<(), Status> {
        let value = encode_instance_as(self.config.format, instance);
        let mut client = self.client.clone();
        // Each registration gets a lease of its own: a lease is revoked only
        // by the registration that granted it, once no key of ours uses it.
        let lease = put_under_new_lease(&mut client, &self.config, key, &value).await?;
        let lease = Arc::new(Mutex::new(lease));
        let keeper = tokio::spawn(keep_alive(
            client,
            self.config.clone(),
            key.to_owned(),
            value,
            lease.clone(),
        ));
        let old = self
            .registered
            .lock()
            .insert(key.to_owned(), Registration { lease, keeper });
        if let Some(old) = old {
            // Registered again (new weight or tags): the key is under the new
            // lease now, and no other operation on it runs, so the old lease
            // holds no key of ours. Stop its keeper before revoking, so that
            // it cannot swap in a lease after we read it.
            old.keeper.abort();
            let _ = old.keeper.await;
            let id = *old.lease.lock();
            let _ = timed(
                self.config.request_timeout,
                "revoking a lease",
                self.client.clone().lease_revoke(id),
            )
            .await;
        }
        Ok(())
    }

    async fn do_deregister(&self, service: &str, instance: &Instance) -> Result<(), Status> {
        let key = instance_key(&self.config, service, instance);
        self.exclusive(&key, self.deregister_locked(&key)).await
    }

    async fn deregister_locked(&self, key: &str) -> Result<(), Status> {
        let Some(reg) = self.registered.lock().remove(key) else {
            return Ok(());
        };
        reg.keeper.abort();
        let _ = reg.keeper.await;
        let limit = self.config.request_timeout;
        let mut client = self.client.clone();
        let id = *reg.lease.lock();
        // Delete the key only while it is under our lease: another process
        // on the same address (a restart, a takeover) may own it now, and
        // its key must stay.
        let ours = Txn::new()
            .when([Compare::lease(key, CompareOp::Equal, id)])
            .and_then([TxnOp::delete(key, None)]);
        let deleted = timed(limit, "deleting an instance from etcd", client.txn(ours)).await;
        let revoked = timed(limit, "revoking a lease", client.lease_revoke(id)).await;
        // Either removes our key; the lease's expiry would, later.
        match (deleted, revoked) {
            (Err(e), Err(_)) => Err(e),
            _ => Ok(()),
        }
    }
}

impl Registry for EtcdRegistry {
    fn register<'a>(&'a self, service: &'a str, instance: &'a Instance) -> RegistryFuture<'a> {
        Box::pin(self.do_register(service, instance))
    }

    fn deregister<'a>(&'a self, service: &'a str, instance: &'a Instance) -> RegistryFuture<'a> {
        Box::pin(self.do_deregister(service, instance))
    }
}

async fn put_under_new_lease(
    client: &mut Client,
    config: &EtcdConfig,
    key: &str,
    value: &str,
) -> Result<i64, Status> {
    let limit = config.request_timeout;
    let granted = timed(
        limit,
        "granting a lease",
        client.lease_grant(config.ttl_secs(), None),
    )
    .await?;
    let id = granted.id();
    timed(
        limit,
        "registering in etcd",
        client.put(key, value, Some(PutOptions::new().with_lease(id))),
    )
    .await?;
    Ok(id)
}

/// Keeps `lease` alive and `key` under it: if etcd lost the lease (expired
/// while unreachable) grants a new one, and whenever the key is gone
/// (deleted by hand, lost with an expired lease) puts it back.
async fn keep_alive(
    mut client: Client,
    config: EtcdConfig,
    key: String,
    value: String,
    lease: Arc<Mutex<i64>>,
) {
    let every = Duration::from_secs(config.ttl_secs() as u64) / 3;
    let limit = config
        .request_timeout
        .min(every.max(Duration::from_millis(100)));
    let mut backoff = Backoff::new(&config);
    loop {
        let id = *lease.lock();
        let kept = Kept {
            key: &key,
            value: &value,
            id,
        };
        let lost = match kept.keep(&mut client, every, limit, &mut backoff).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "etcd lease keep-alive broke; retrying");
                false
            }
        };
        backoff.wait().await;
        if lost {
            tracing::warn!(key = %key, "etcd lease expired; registering again");
            loop {
                let granted = timed(
                    limit,
                    "granting a lease",
                    client.lease_grant(config.ttl_secs(), None),
                )
                .await;
                match granted {
                    // The next keep-alive round puts the key back under it.
                    Ok(g) => {
                        *lease.lock() = g.id();
                        backoff.reset();
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(key = %key, error = %e, "registering again failed");
                        backoff.wait().await;
                    }
                }
            }
        }
    }
}

/// One registration's key, value and lease, as the keep-alive sees them.
struct Kept<'a> {
    key: &'a str,
    value: &'a str,
    id: i64,
}

impl Kept<'_> {
    /// Sends keep-alives on one stream, and after each checks the key.
    /// `Ok` when etcd says the lease is gone, `Err` when the stream broke.
    async fn keep(
        &self,
        client: &mut Client,
        every: Duration,
        limit: Duration,
        backoff: &mut Backoff,
    ) -> Result<(), Status> {
        let opened = timed(limit, "lease keep-alive", client.lease_keep_alive(self.id)).await;
        let (mut keeper, mut stream) = match opened {
            Ok(s) => s,
            // etcd-client reads a new stream's first answer itself and turns
            // "no such lease" (TTL 0: it expired while etcd was out of reach,
            // or a paused etcd expired it on resuming) into an error like any
            // other; ask etcd which it was, rather than retry a dead lease
            // forever.
            Err(e) => {
                let ttl = timed(
                    limit,
                    "reading a lease",
                    client.lease_time_to_live(self.id, None),
                )
                .await;
                return match ttl {
                    Ok(r) if r.ttl() <= 0 => Ok(()),
                    _ => Err(e),
                };
            }
        };
        loop {
            timed(limit, "lease keep-alive", keeper.keep_alive()).await?;
            match timed(limit, "lease keep-alive", stream.message()).await? {
                Some(r) if r.ttl() > 0 => backoff.reset(),
                Some(_) => return Ok(()),
                None => return Err(Status::unavailable("etcd closed the keep-alive stream")),
            }
            // etcd keeps a lease alive whether or not a key uses it, so a
            // live lease does not mean a registered instance.
            self.put_back_if_gone(client, limit).await?;
            tokio::time::sleep(every).await;
        }
    }

    /// Put the key under our lease if no key is there. A key under another
    /// lease belongs to another registration (a process that took the
    /// address over) and is left alone.
    async fn put_back_if_gone(&self, client: &mut Client, limit: Duration) -> Result<(), Status> {
        let absent = Txn::new()
            .when([Compare::version(self.key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                self.key,
                self.value,
                Some(PutOptions::new().with_lease(self.id)),
            )]);
        let put = timed(limit, "checking a registration", client.txn(absent)).await?;
        if put.succeeded() {
            tracing::warn!(key = %self.key, "the instance's key was gone from etcd; put it back");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let mut inst = Instance::new("127.0.0.1:9090".parse().unwrap()).with_weight(7);
        inst.tags.insert("zone".into(), "a/b".into());
        let config = EtcdConfig::default();
        assert_eq!(
            instance_key(&config, "Echo", &inst),
            "/weft/services/Echo/127.0.0.1:9090"
        );
        let unix = Instance::new("unix:/run/x%y.sock".parse().unwrap());
        assert_eq!(
            instance_key(&config, "a/b", &unix),
            "/weft/services/a%2Fb/unix:%2Frun%2Fx%25y.sock"
        );
        let json = encode_instance(&inst);
        assert_eq!(
            json,
            r#"{"address":"127.0.0.1:9090","weight":7,"tags":{"zone":"a/b"}}"#
        );
        assert_eq!(decode_instance(json.as_bytes()).unwrap(), inst);
        let bare = decode_instance(br#"{"address":"[::1]:80"}"#).unwrap();
        assert_eq!(bare.weight, DEFAULT_WEIGHT);
        assert!(decode_instance(br#"{"address":"nope"}"#).is_err());
        assert!(decode_instance(b"{").is_err());
    }

    #[test]
    fn kitex_records_round_trip_and_read_what_kitex_writes() {
        let config = EtcdConfig::kitex();
        let mut inst = Instance::new("127.0.0.1:9090".parse().unwrap()).with_weight(7);
        inst.tags.insert("zone".into(), "a".into());
        assert_eq!(
            instance_key(&config, "weft-echo", &inst),
            "kitex/registry-etcd/weft-echo/127.0.0.1:9090"
        );
        let json = encode_instance_as(RecordFormat::Kitex, &inst);
        assert_eq!(
            json,
            r#"{"network":"tcp","address":"127.0.0.1:9090","weight":7,"tags":{"zone":"a"}}"#
        );
        assert_eq!(
            decode_instance_as(RecordFormat::Kitex, json.as_bytes()).unwrap(),
            inst
        );
        let unix = Instance::new("unix:/run/echo.sock".parse().unwrap());
        let json = encode_instance_as(RecordFormat::Kitex, &unix);
        assert_eq!(
            json,
            r#"{"network":"unix","address":"/run/echo.sock","weight":100,"tags":{}}"#
        );
        assert_eq!(
            decode_instance_as(RecordFormat::Kitex, json.as_bytes()).unwrap(),
            unix
        );

        // As Kitex's registry writes a server without tags, and an IPv6 host
        // without brackets.
        let kitex = decode_instance_as(
            RecordFormat::Kitex,
            br#"{"network":"tcp","address":"::1:8888","weight":0,"tags":null}"#,
        )
        .unwrap();
        assert_eq!(kitex.address, "[::1]:8888".parse().unwrap());
        assert_eq!(kitex.weight, KITEX_DEFAULT_WEIGHT);
        assert!(kitex.tags.is_empty());
        let negative = br#"{"network":"tcp","address":"10.0.0.1:1","weight":-3}"#;
        assert_eq!(
            decode_instance_as(RecordFormat::Kitex, negative)
                .unwrap()
                .weight,
            KITEX_DEFAULT_WEIGHT
        );
        for bad in [
            &br#"{"network":"udp","address":"10.0.0.1:1"}"#[..],
            br#"{"network":"tcp","address":"nope"}"#,
            br#"{"network":"tcp","address":"unix:/x"}"#,
            br#"{"network":"unix","address":""}"#,
            br#"{"network":"tcp"}"#,
            b"[",
        ] {
            assert!(
                decode_instance_as(RecordFormat::Kitex, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
