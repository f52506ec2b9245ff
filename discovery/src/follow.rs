//! The services a discover follows: one background task per service that
//! publishes its instance set, shared by every subscriber, and stopped once
//! the last subscriber is gone.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Weak},
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{sync::watch, task::JoinHandle};
use weft_core::{Instances, Status};

struct Followed {
    /// Tells this follower from a later one of the same service, so that a
    /// stopping task never removes its successor.
    id: u64,
    set: watch::Sender<Instances>,
    loaded: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Services {
    followed: HashMap<String, Followed>,
    next_id: u64,
}

/// The followed services, their tasks stopped when dropped.
#[derive(Default)]
pub(crate) struct Followers {
    services: Arc<Mutex<Services>>,
}

impl Followers {
    /// The set of `service`, starting its follower (the future `start` makes
    /// from the set to publish and a flag to raise after the first read) on
    /// the first subscription. The follower stops, and its future is
    /// dropped, when its last receiver is; a later subscription starts a new
    /// one. Must be called inside a Tokio runtime.
    pub(crate) fn subscribe<F>(
        &self,
        service: &str,
        start: impl FnOnce(watch::Sender<Instances>, watch::Sender<bool>) -> Result<F, Status>,
    ) -> Result<watch::Receiver<Instances>, Status>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut services = self.services.lock();
        if let Some(f) = services.followed.get(service) {
            return Ok(f.set.subscribe());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Status::internal("subscribing outside a Tokio runtime"))?;
        let set = watch::Sender::new(Instances::from(Vec::new()));
        let loaded = watch::Sender::new(false);
        let follow = start(set.clone(), loaded.clone())?;
        // Subscribe before the task starts, so that it never sees the
        // receiver count at zero before its first subscriber.
        let rx = set.subscribe();
        let id = services.next_id;
        services.next_id += 1;
        let task = runtime.spawn(while_subscribed(
            follow,
            set.clone(),
            Arc::downgrade(&self.services),
            service.to_owned(),
            id,
        ));
        services.followed.insert(
            service.to_owned(),
            Followed {
                id,
                set,
                loaded,
                task,
            },
        );
        Ok(rx)
    }

    /// Wait up to `timeout` for the first read of a subscribed `service`.
    pub(crate) async fn loaded(&self, service: &str, timeout: Duration) -> bool {
        let loaded = self
            .services
            .lock()
            .followed
            .get(service)
            .map(|f| f.loaded.subscribe());
        match loaded {
            Some(mut l) => tokio::time::timeout(timeout, l.wait_for(|l| *l))
                .await
                .is_ok(),
            None => false,
        }
    }

    /// The names followed.
    pub(crate) fn names(&self) -> Vec<String> {
        self.services.lock().followed.keys().cloned().collect()
    }
}

/// Runs `follow` until `set` has no receiver left, then forgets the
/// follower `id` of `service`.
async fn while_subscribed(
    follow: impl Future<Output = ()>,
    set: watch::Sender<Instances>,
    services: Weak<Mutex<Services>>,
    service: String,
    id: u64,
) {
    let mut follow = std::pin::pin!(follow);
    loop {
        tokio::select! {
            () = &mut follow => break,
            () = set.closed() => {
                // Subscriptions happen under this lock, so the count read
                // under it is exact: none can slip in before the removal.
                let Some(services) = services.upgrade() else { return };
                let mut services = services.lock();
                if set.receiver_count() == 0 {
                    forget(&mut services, &service, id);
                    return;
                }
            }
        }
    }
    if let Some(services) = services.upgrade() {
        forget(&mut services.lock(), &service, id);
    }
}

fn forget(services: &mut Services, service: &str, id: u64) {
    if services.followed.get(service).is_some_and(|f| f.id == id) {
        tracing::debug!(service, "no subscriber left; stopping its follower");
        services.followed.remove(service);
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        for f in self.services.lock().followed.values() {
            f.task.abort();
        }
    }
}
