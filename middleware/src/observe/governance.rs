//! What the governance layers report: sheds, retries, backup requests,
//! breaker transitions and adaptive limits, as `metrics` counters and
//! gauges and `tracing` events.
//!
//! Each is a rare event (a shed, a retry, a state change), so a handle is
//! looked up in the recorder each time rather than kept; the labels are
//! static strings except a breaker's name, which is formatted only when
//! the breaker changes state.

use faststr::FastStr;
use weft_core::Code;

use super::table::code_name;

use crate::breaker::BreakerState;

/// A call shed by `limit` ("rate limit", "concurrency limit", "adaptive
/// limit").
pub(crate) fn shed(limit: &'static str) {
    // Literal labels: the key is static, no allocation.
    match limit {
        "rate limit" => metrics::counter!("weft_server_shed_total", "limit" => "rate").increment(1),
        "concurrency limit" => {
            metrics::counter!("weft_server_shed_total", "limit" => "concurrency").increment(1)
        }
        "adaptive limit" => {
            metrics::counter!("weft_server_shed_total", "limit" => "adaptive").increment(1)
        }
        _ => metrics::counter!("weft_server_shed_total", "limit" => "other").increment(1),
    }
    tracing::debug!(limit, "call shed");
}

/// A retry scheduled for `method` (its budget allowed it): attempt number
/// `attempt`, after a failure with `code`. The event lands on the call's
/// span (the retry future runs inside it).
pub(crate) fn retry(method: &str, attempt: u32, code: Code) {
    metrics::counter!("weft_client_retries_total").increment(1);
    tracing::info!(
        rpc.method = method,
        rpc.attempt = attempt,
        error.type = code_name(code),
        "retry scheduled"
    );
}

/// A retry the budget refused.
pub(crate) fn budget_exhausted(method: &str) {
    metrics::counter!("weft_client_retry_budget_exhausted_total").increment(1);
    tracing::debug!(rpc.method = method, "retry budget exhausted");
}

/// A backup request issued for `method`, as attempt number `attempt`.
pub(crate) fn backup(method: &str, attempt: u32) {
    metrics::counter!("weft_client_backup_requests_total").increment(1);
    tracing::info!(
        rpc.method = method,
        rpc.attempt = attempt,
        "backup request sent"
    );
}

/// The adaptive limit moved to `limit`.
pub(crate) fn adaptive_limit(limit: usize) {
    metrics::gauge!("weft_server_adaptive_limit").set(limit as f64);
}

fn state_name(s: BreakerState) -> &'static str {
    match s {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
    }
}

/// A breaker of `scope` ("method" or "instance") named `name` went from
/// `from` to `to`.
pub(crate) fn breaker(scope: &'static str, name: &FastStr, from: BreakerState, to: BreakerState) {
    let to_name = state_name(to);
    match to {
        BreakerState::Open => {
            metrics::counter!("weft_breaker_transitions_total", "scope" => scope, "to" => "open")
                .increment(1);
            tracing::warn!(
                scope,
                name = name.as_str(),
                from = state_name(from),
                "circuit breaker opened"
            );
        }
        _ => {
            metrics::counter!("weft_breaker_transitions_total", "scope" => scope, "to" => to_name)
                .increment(1);
            tracing::info!(
                scope,
                name = name.as_str(),
                from = state_name(from),
                to = to_name,
                "circuit breaker state changed"
            );
        }
    }
    let value = match to {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    };
    metrics::gauge!("weft_breaker_state", "scope" => scope, "name" => name.to_string()).set(value);
}

/// The balancer of `service` took a new instance set of `instances`.
pub(crate) fn discovery_update(service: &str, instances: usize) {
    // Once per set change: the label's `String` is no per-call cost.
    metrics::gauge!("weft_client_discovery_instances", "service" => service.to_owned())
        .set(instances as f64);
    metrics::counter!("weft_client_discovery_updates_total", "service" => service.to_owned())
        .increment(1);
    tracing::info!(rpc.service = service, instances, "instance set changed");
}
