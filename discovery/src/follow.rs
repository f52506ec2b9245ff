//! The services a discover follows: one background task per service that
//! publishes its instance set, shared by every subscriber.

use std::{collections::HashMap, future::Future, time::Duration};

use parking_lot::Mutex;
use tokio::{sync::watch, task::JoinHandle};
use weft_core::{Instances, Status};

struct Followed {
    set: watch::Sender<Instances>,
    loaded: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The followed services, their tasks stopped when dropped.
#[derive(Default)]
pub(crate) struct Followers {
    services: Mutex<HashMap<String, Followed>>,
}

impl Followers {
    /// The set of `service`, starting its follower (the future `start` makes
    /// from the set to publish and a flag to raise after the first read) on
    /// the first subscription. Must be called inside a Tokio runtime.
    pub(crate) fn subscribe<F>(
        &self,
        service: &str,
        start: impl FnOnce(watch::Sender<Instances>, watch::Sender<bool>) -> Result<F, Status>,
    ) -> Result<watch::Receiver<Instances>, Status>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut services = self.services.lock();
        if let Some(f) = services.get(service) {
            return Ok(f.set.subscribe());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Status::internal("subscribing outside a Tokio runtime"))?;
        let set = watch::Sender::new(Instances::from(Vec::new()));
        let loaded = watch::Sender::new(false);
        let task = runtime.spawn(start(set.clone(), loaded.clone())?);
        let rx = set.subscribe();
        services.insert(service.to_owned(), Followed { set, loaded, task });
        Ok(rx)
    }

    /// Wait up to `timeout` for the first read of a subscribed `service`.
    pub(crate) async fn loaded(&self, service: &str, timeout: Duration) -> bool {
        let loaded = self
            .services
            .lock()
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
        self.services.lock().keys().cloned().collect()
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        for f in self.services.get_mut().values() {
            f.task.abort();
        }
    }
}
