//! What the client and server options share about etcd: the endpoints as C
//! gives them, and the layout keys are kept in.

use std::time::Duration;

use weft_core::Status;

/// How long `weft_client_new` waits for the first read of a service's
/// instances from etcd: a client must not start with an empty set it has
/// not looked up yet, nor hang on an etcd that is down.
pub const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a service lives in etcd, as the options name it.
#[derive(Debug, Clone)]
pub(crate) struct EtcdTarget {
    pub(crate) endpoints: Vec<String>,
    pub(crate) service: String,
}

impl EtcdTarget {
    /// Parse `endpoints` (comma-separated `http://host:port` URLs) and
    /// check `service` (not empty; a `/` in it is escaped in the key).
    pub(crate) fn parse(endpoints: &str, service: &str) -> Result<EtcdTarget, Status> {
        let endpoints: Vec<String> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if endpoints.is_empty() {
            return Err(Status::invalid_argument("endpoints names no etcd endpoint"));
        }
        if let Some(bad) = endpoints
            .iter()
            .find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
        {
            return Err(Status::invalid_argument(format!(
                "etcd endpoint {bad:?} is not an http:// or https:// URL"
            )));
        }
        if service.is_empty() {
            return Err(Status::invalid_argument("the etcd service name is empty"));
        }
        Ok(EtcdTarget {
            endpoints,
            service: service.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_comma_separated_urls() {
        let t = EtcdTarget::parse("http://127.0.0.1:2379, http://[::1]:2379,", "Echo").unwrap();
        assert_eq!(t.endpoints, ["http://127.0.0.1:2379", "http://[::1]:2379"]);
        assert_eq!(t.service, "Echo");
        for (e, s) in [
            ("", "Echo"),
            (" , ", "Echo"),
            ("127.0.0.1:2379", "Echo"),
            ("http://127.0.0.1:2379", ""),
        ] {
            assert!(EtcdTarget::parse(e, s).is_err(), "{e:?} {s:?}");
        }
    }
}
