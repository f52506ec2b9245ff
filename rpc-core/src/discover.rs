//! Service discovery, the contract: [`Discover`] yields the instances of a
//! service and every change to them; load balancers consume it, and backends
//! (static, DNS, etcd) implement it.

use std::{collections::BTreeMap, fmt, sync::Arc};

use faststr::FastStr;
use tokio::sync::watch;

use crate::{status::Status, transport::Address};

/// Weight an instance gets unless told otherwise.
pub const DEFAULT_WEIGHT: u32 = 100;

/// One instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Instance {
    /// Where it listens.
    pub address: Address,
    /// Relative share of traffic; 0 gets none.
    pub weight: u32,
    /// Free-form labels (zone, version, …).
    pub tags: BTreeMap<FastStr, FastStr>,
}

impl Instance {
    /// An instance at `address` with the default weight and no tags.
    pub fn new(address: Address) -> Instance {
        Instance {
            address,
            weight: DEFAULT_WEIGHT,
            tags: BTreeMap::new(),
        }
    }

    /// The same instance with `weight`.
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Instance {
        self.weight = weight;
        self
    }
}

/// The instances of a service at one moment. Cheap to clone.
pub type Instances = Arc<[Instance]>;

/// Finds the instances of a service and follows their changes.
///
/// `subscribe` returns a watch channel holding the whole current set: a
/// subscriber that falls behind sees the newest set, never a stale partial
/// update, and one that arrives late gets the current set at once.
pub trait Discover: Send + Sync + 'static {
    /// Follow the instances of `service`.
    fn subscribe(&self, service: &str) -> Result<watch::Receiver<Instances>, Status>;
}

impl<D: Discover + ?Sized> Discover for Arc<D> {
    fn subscribe(&self, service: &str) -> Result<watch::Receiver<Instances>, Status> {
        (**self).subscribe(service)
    }
}

/// The future a [`Registry`] returns.
pub type RegistryFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Status>> + Send + 'a>>;

/// Announces server instances where clients' [`Discover`] finds them.
pub trait Registry: Send + Sync + 'static {
    /// Make `instance` of `service` discoverable, and keep it so (leases are
    /// the registry's business) until deregistered.
    fn register<'a>(&'a self, service: &'a str, instance: &'a Instance) -> RegistryFuture<'a>;
    /// Remove `instance` of `service`.
    fn deregister<'a>(&'a self, service: &'a str, instance: &'a Instance) -> RegistryFuture<'a>;
}

/// A fixed list of instances that can be changed by hand: the embedded
/// default (a client given `host:port` addresses needs nothing else) and the
/// tool for tests that move instances around.
pub struct StaticDiscover {
    tx: watch::Sender<Instances>,
}

impl fmt::Debug for StaticDiscover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticDiscover")
            .field("instances", &*self.tx.borrow())
            .finish()
    }
}

impl StaticDiscover {
    /// A discover that yields `instances` for every service name.
    pub fn new(instances: impl IntoIterator<Item = Instance>) -> StaticDiscover {
        let set: Instances = instances.into_iter().collect();
        StaticDiscover {
            tx: watch::Sender::new(set),
        }
    }

    /// From addresses with the default weight.
    pub fn from_addresses(addrs: impl IntoIterator<Item = Address>) -> StaticDiscover {
        StaticDiscover::new(addrs.into_iter().map(Instance::new))
    }

    /// Replace the set; subscribers see the change.
    pub fn set(&self, instances: impl IntoIterator<Item = Instance>) {
        self.tx.send_replace(instances.into_iter().collect());
    }

    /// The current set.
    pub fn current(&self) -> Instances {
        self.tx.borrow().clone()
    }
}

impl Discover for StaticDiscover {
    fn subscribe(&self, _service: &str) -> Result<watch::Receiver<Instances>, Status> {
        Ok(self.tx.subscribe())
    }
}

/// An in-process registry: servers that register appear to this process's
/// clients at once. Handy for tests and single-process deployments.
impl Registry for StaticDiscover {
    fn register<'a>(&'a self, _service: &'a str, instance: &'a Instance) -> RegistryFuture<'a> {
        self.tx.send_modify(|set| {
            let mut v: Vec<Instance> = set
                .iter()
                .filter(|i| i.address != instance.address)
                .cloned()
                .collect();
            v.push(instance.clone());
            *set = v.into();
        });
        Box::pin(std::future::ready(Ok(())))
    }

    fn deregister<'a>(&'a self, _service: &'a str, instance: &'a Instance) -> RegistryFuture<'a> {
        self.tx.send_modify(|set| {
            *set = set
                .iter()
                .filter(|i| i.address != instance.address)
                .cloned()
                .collect();
        });
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_see_changes() {
        let a: Address = "127.0.0.1:1".parse().unwrap();
        let b: Address = "127.0.0.1:2".parse().unwrap();
        let d = StaticDiscover::from_addresses([a.clone()]);
        let mut rx = d.subscribe("svc").unwrap();
        assert_eq!(rx.borrow().len(), 1);
        d.set([Instance::new(a), Instance::new(b).with_weight(0)]);
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow().len(), 2);
        assert_eq!(rx.borrow()[1].weight, 0);
    }
}
