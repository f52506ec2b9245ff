//! DNS: a service's instances are the addresses a name resolves to,
//! re-resolved periodically.
//!
//! A service is looked up under a DNS name, by default its own name, or the
//! one given with [`DnsDiscover::name`]. Two forms:
//!
//! - `host:port` — A and AAAA records of `host` through the system resolver
//!   ([`tokio::net::lookup_host`], so `/etc/hosts` applies), one instance per
//!   address, each on `port` with the default weight.
//! - `_service._proto.domain` (begins with `_`, no port) — SRV records
//!   through [`hickory_resolver`] (the system's `/etc/resolv.conf`, or the
//!   resolver given to [`DnsDiscover::with_resolver`]). Only the records of
//!   the lowest priority value are used (the others are backups); each
//!   target is resolved to its addresses, which take the record's port and
//!   weight (SRV weight 0 becomes 1: RFC 2782 gives it a small share, not
//!   none), and carry the tag `srv-target`.
//!
//! Every [`DnsConfig::interval`] the name is resolved again and subscribers
//! see the new set if it changed. When a resolution fails, times out or
//! returns no address, the last good set stays: a resolver outage does not
//! empty a client's instances.

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use crate::follow::Followers;
use hickory_resolver::TokioResolver;
use parking_lot::Mutex;
use tokio::sync::watch;
use weft_core::{Address, Discover, Instance, Instances, Status};

pub use hickory_resolver;

/// How often names are resolved again by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// How long one resolution may take by default before it counts as failed.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Configures a [`DnsDiscover`].
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Time between resolutions. Default 30 s.
    pub interval: Duration,
    /// Bound on one resolution. Default 5 s.
    pub timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_RESOLVE_TIMEOUT,
        }
    }
}

/// A DNS name in one of the two forms.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Host(String, u16),
    Srv(String),
}

impl Target {
    fn parse(name: &str) -> Result<Target, Status> {
        if name.starts_with('_') && !name.contains(':') {
            return Ok(Target::Srv(name.to_owned()));
        }
        let (host, port) = name.rsplit_once(':').ok_or_else(|| {
            Status::invalid_argument(format!(
                "DNS name {name:?} is neither host:port nor _service._proto.domain"
            ))
        })?;
        let port = port
            .parse::<u16>()
            .map_err(|_| Status::invalid_argument(format!("bad port in DNS name {name:?}")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(Status::invalid_argument(format!("no host in {name:?}")));
        }
        Ok(Target::Host(host.to_owned(), port))
    }
}

// ===== impl DnsDiscover =====

/// Discovers instances through DNS. See the [module docs](self). Cheap to
/// clone; the resolving tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct DnsDiscover {
    inner: Arc<Inner>,
}

struct Inner {
    config: DnsConfig,
    names: HashMap<String, String>,
    resolver: Mutex<Option<Arc<TokioResolver>>>,
    services: Followers,
}

impl fmt::Debug for DnsDiscover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsDiscover")
            .field("config", &self.inner.config)
            .field("names", &self.inner.names)
            .finish()
    }
}

impl Default for DnsDiscover {
    fn default() -> Self {
        DnsDiscover::new(DnsConfig::default())
    }
}

impl DnsDiscover {
    /// A discover that looks each service up under its own name.
    pub fn new(config: DnsConfig) -> DnsDiscover {
        DnsDiscover {
            inner: Arc::new(Inner {
                config,
                names: HashMap::new(),
                resolver: Mutex::new(None),
                services: Followers::default(),
            }),
        }
    }

    /// Look `service` up under `dns_name` (`host:port` or
    /// `_service._proto.domain`). Call before the first subscription.
    #[must_use]
    pub fn name(mut self, service: impl Into<String>, dns_name: impl Into<String>) -> Self {
        self.inner_mut()
            .names
            .insert(service.into(), dns_name.into());
        self
    }

    /// Resolve SRV records with `resolver` instead of one built from the
    /// system configuration. Call before the first subscription.
    #[must_use]
    pub fn with_resolver(mut self, resolver: TokioResolver) -> Self {
        *self.inner_mut().resolver.get_mut() = Some(Arc::new(resolver));
        self
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner)
            .expect("DnsDiscover is configured before it is cloned or subscribed to")
    }

    /// Subscribe to `service` and wait, up to `timeout`, until its name has
    /// resolved to at least one address; an error if it has not by then
    /// (the subscription goes on resolving either way).
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
                "{service} not resolved within {timeout:?}"
            )))
        }
    }

    fn srv_resolver(&self) -> Result<Arc<TokioResolver>, Status> {
        let mut r = self.inner.resolver.lock();
        if let Some(r) = &*r {
            return Ok(r.clone());
        }
        let built = TokioResolver::builder_tokio()
            .map_err(|e| Status::unavailable(format!("reading the system DNS config: {e}")))?
            .build();
        let built = Arc::new(built);
        *r = Some(built.clone());
        Ok(built)
    }
}

impl Discover for DnsDiscover {
    /// Follow `service`. The first subscription starts its resolving task
    /// (so it must be made inside a Tokio runtime); the set is empty until
    /// the first resolution succeeds.
    fn subscribe(&self, service: &str) -> Result<watch::Receiver<Instances>, Status> {
        self.inner.services.subscribe(service, |set, loaded| {
            let name = self
                .inner
                .names
                .get(service)
                .map_or(service, String::as_str);
            let target = Target::parse(name)?;
            let resolver = match target {
                Target::Srv(_) => Some(self.srv_resolver()?),
                Target::Host(..) => None,
            };
            Ok(follow(
                target,
                resolver,
                self.inner.config.clone(),
                set,
                loaded,
            ))
        })
    }
}

async fn follow(
    target: Target,
    resolver: Option<Arc<TokioResolver>>,
    config: DnsConfig,
    set: watch::Sender<Instances>,
    loaded: watch::Sender<bool>,
) {
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let resolved =
            tokio::time::timeout(config.timeout, resolve(&target, resolver.as_deref())).await;
        match resolved {
            Ok(Ok(next)) if !next.is_empty() => {
                set.send_if_modified(|cur| {
                    if **cur == *next {
                        false
                    } else {
                        *cur = next.into();
                        true
                    }
                });
                // Ready means resolved: a first attempt that failed or timed
                // out (a busy resolver) must not hand out the empty set.
                loaded.send_replace(true);
            }
            Ok(Ok(_)) => {
                tracing::warn!(?target, "DNS returned no address; keeping the last set");
            }
            Ok(Err(e)) => {
                tracing::warn!(?target, error = %e, "DNS resolution failed; keeping the last set");
            }
            Err(_) => {
                tracing::warn!(?target, "DNS resolution timed out; keeping the last set");
            }
        }
    }
}

/// The instances `target` resolves to now, in a stable order.
async fn resolve(
    target: &Target,
    resolver: Option<&TokioResolver>,
) -> Result<Vec<Instance>, Status> {
    match target {
        Target::Host(host, port) => {
            let addrs = lookup(host, *port).await?;
            Ok(addrs
                .into_iter()
                .map(|a| Instance::new(Address::Tcp(a)))
                .collect())
        }
        Target::Srv(name) => {
            let resolver = resolver.ok_or_else(|| Status::internal("no SRV resolver"))?;
            let lookup_srv = resolver
                .srv_lookup(name.as_str())
                .await
                .map_err(|e| Status::unavailable(format!("SRV {name}: {e}")))?;
            let records: Vec<_> = lookup_srv.iter().collect();
            let Some(best) = records.iter().map(|r| r.priority()).min() else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            let mut seen = BTreeSet::new();
            for r in records.iter().filter(|r| r.priority() == best) {
                let host = r.target().to_utf8();
                let host = host.trim_end_matches('.');
                // One target failing does not hide the others.
                let addrs = match lookup(host, r.port()).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(target = host, error = %e, "SRV target did not resolve");
                        continue;
                    }
                };
                for a in addrs {
                    if seen.insert(a) {
                        let mut inst = Instance::new(Address::Tcp(a))
                            .with_weight(u32::from(r.weight().max(1)));
                        inst.tags
                            .insert("srv-target".into(), host.to_owned().into());
                        out.push(inst);
                    }
                }
            }
            out.sort_by_key(|i| i.address.to_string());
            Ok(out)
        }
    }
}

async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, Status> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Status::unavailable(format!("resolving {host}: {e}")))?;
    // Sorted and deduplicated (getaddrinfo repeats an address per socket
    // type), so an unchanged answer is an unchanged set.
    let set: BTreeSet<SocketAddr> = addrs.collect();
    Ok(set.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(
            Target::parse("localhost:80").unwrap(),
            Target::Host("localhost".into(), 80)
        );
        assert_eq!(
            Target::parse("[::1]:80").unwrap(),
            Target::Host("::1".into(), 80)
        );
        assert_eq!(
            Target::parse("_echo._tcp.example.com").unwrap(),
            Target::Srv("_echo._tcp.example.com".into())
        );
        assert!(Target::parse("localhost").is_err());
        assert!(Target::parse("localhost:http").is_err());
        assert!(Target::parse(":80").is_err());
    }
}
