//! Service discovery and registration backends for Weft.
//!
//! The contract lives in `weft-rpc-core`: [`Discover`] yields the instances of a
//! service (address, weight, tags) and every change to them, [`Registry`]
//! announces a server (`ServerBuilder::register` calls it once the server
//! listens, and deregisters before it drains). This crate holds the
//! backends:
//!
//! - [`StaticDiscover`] — a fixed list, changeable by hand, and an
//!   in-process registry. It is the embedded default and lives in
//!   `weft-rpc-core` itself, so a client given addresses needs nothing else; it
//!   is re-exported here so every backend is found in one place.
//! - [`DnsDiscover`] — A/AAAA (`host:port`) and SRV (`_service._proto.domain`)
//!   records, re-resolved periodically, keeping the last good answer when
//!   the resolver fails.
//! - [`EtcdDiscover`] and [`EtcdRegistry`] — instances as JSON under
//!   `/weft/services/<service>/<instance>`, discovered with a prefix watch
//!   that survives etcd outages without losing an update, registered under
//!   a lease kept alive so that a crashed server disappears.
//!
//! # Example
//!
//! A server registers in etcd; a client balances over what it finds there.
//!
//! ```no_run
//! # async fn run() -> Result<(), weft_core::Status> {
//! use std::{sync::Arc, time::Duration};
//! use weft_core::{Instance, ServerBuilder};
//! use weft_discovery::{EtcdConfig, EtcdDiscover, EtcdRegistry};
//!
//! let endpoints = ["http://127.0.0.1:2379"];
//! let registry = EtcdRegistry::connect(&endpoints, EtcdConfig::default()).await?;
//! let builder = ServerBuilder::new().register(
//!     Arc::new(registry),
//!     "Echo",
//!     Instance::new("0.0.0.0:0".parse().unwrap()),
//! );
//! // builder.serve(&addr, make_codec, handler).await? registers once listening.
//!
//! let discover = EtcdDiscover::connect(&endpoints, EtcdConfig::default()).await?;
//! let instances = discover.subscribe_ready("Echo", Duration::from_secs(3)).await?;
//! println!("Echo runs at {:?}", instances.borrow().iter().map(|i| &i.address).collect::<Vec<_>>());
//! // weft_middleware::balance::Balance::new(&discover, "Echo", make_client, config)
//! // spreads calls over them and follows every change.
//! # drop(builder);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod dns;
pub mod etcd;
mod follow;

pub use dns::{DnsConfig, DnsDiscover};
pub use etcd::{EtcdConfig, EtcdDiscover, EtcdRegistry};
pub use weft_core::discover::{
    Discover, Instance, Instances, Registry, RegistryFuture, StaticDiscover, DEFAULT_WEIGHT,
};
