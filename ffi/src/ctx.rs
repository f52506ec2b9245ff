//! The call context handle: deadline and metainfo going out with a call,
//! and coming back with its answer.

use std::{
    ffi::c_char,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use parking_lot::Mutex;
use weft_core::{Code, Context, KvList, Status};

use crate::{
    buf::weft_bytes,
    error::{check_out, guard, quiet, str_arg, weft_code, weft_error, write_out},
    handle::handle_type,
};

/// Metainfo scope: values sent to every hop downstream.
pub const WEFT_SCOPE_PERSISTENT: i32 = 0;
/// Metainfo scope: values sent to the next hop only.
pub const WEFT_SCOPE_TRANSIENT: i32 = 1;
/// Metainfo scope: values the callee sends back to the caller (read on a
/// client after a call; set on a server before answering).
pub const WEFT_SCOPE_BACKWARD: i32 = 2;
/// Metainfo scope, server side: the transient values the caller sent.
pub const WEFT_SCOPE_UPSTREAM: i32 = 3;

#[derive(Debug, Default)]
pub(crate) struct CtxState {
    pub(crate) cx: Context,
    /// The timeout of calls made with this context, from when each starts.
    pub(crate) timeout: Option<Duration>,
}

/// What `weft_ctx_cancel` sets: the calls started with a context wait on
/// it beside their answer.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    cancelled: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Cancel {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Resolves once the context is cancelled.
    pub(crate) async fn cancelled(&self) {
        loop {
            // Registered before the flag is read, so a cancel between the
            // two is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Run `fut`, or end it with `CANCELLED` when the context is cancelled
    /// first (dropping it drops the call: its answer, when it comes, is
    /// discarded).
    pub(crate) async fn run<T>(
        this: Option<Arc<Cancel>>,
        fut: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let Some(this) = this else {
            return fut.await;
        };
        tokio::select! {
            biased;
            r = fut => r,
            () = this.cancelled() => Err(cancelled()),
        }
    }
}

pub(crate) fn cancelled() -> Status {
    Status::cancelled("the call's context was cancelled (weft_ctx_cancel)")
}

/// A context: a `Context` and a timeout under one lock.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub(crate) state: Mutex<CtxState>,
    /// A server handler's context: it belongs to its call, not to C.
    pub(crate) call: bool,
    /// Set by `weft_ctx_cancel`; shared by the calls made with it.
    pub(crate) cancel: Arc<Cancel>,
}

impl Ctx {
    pub(crate) fn of(cx: Context) -> Arc<Ctx> {
        Arc::new(Ctx {
            state: Mutex::new(CtxState { cx, timeout: None }),
            call: false,
            cancel: Arc::default(),
        })
    }

    /// The context of a call to `method` made with this one now.
    pub(crate) fn for_call(&self, service: &faststr::FastStr, method: &str) -> Context {
        let s = self.state.lock();
        let mut cx = s.cx.clone();
        cx.service = service.clone();
        cx.method = faststr::FastStr::new(method);
        // What came back with an earlier call, or arrived with the call a
        // server handler serves, is not sent on.
        cx.metainfo.backward = KvList::default();
        cx.metainfo.upstream = KvList::default();
        if let Some(t) = s.timeout {
            let mut own = Context::default();
            own.set_timeout(t);
            cx.deadline = match (cx.deadline, own.deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        cx
    }
}

/// A call context: deadline, metainfo out and metainfo back.
/// Thread-safe (a lock inside), though one context is usually used by
/// one call at a time.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct weft_ctx {
    _opaque: [u8; 0],
}

handle_type!(weft_ctx, Ctx, CTXS, 0x11, "weft_ctx");

fn scope(kv: &mut crate::ctx::CtxState, scope: i32) -> Result<&mut KvList, Status> {
    let m = &mut kv.cx.metainfo;
    Ok(match scope {
        WEFT_SCOPE_PERSISTENT => &mut m.persistent,
        WEFT_SCOPE_TRANSIENT => &mut m.transient,
        WEFT_SCOPE_BACKWARD => &mut m.backward,
        WEFT_SCOPE_UPSTREAM => &mut m.upstream,
        other => {
            return Err(Status::invalid_argument(format!(
                "unknown metainfo scope {other}"
            )))
        }
    })
}

/// Create an empty context (no timeout of its own, no metainfo) and set
/// `*out` to it; free with `weft_ctx_free`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_ctx_new(out: *mut *mut weft_ctx, err: *mut *mut weft_error) -> weft_code {
    guard(err, || {
        check_out(out, "out")?;
        write_out(out, "out", weft_ctx::register(Arc::new(Ctx::default())))
    })
}

/// A context for a call made while serving the call of `parent` (a server
/// handler's context): its deadline and persistent metainfo carry over,
/// transient and backward values do not. Free with `weft_ctx_free`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_ctx_child(
    parent: *const weft_ctx,
    out: *mut *mut weft_ctx,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(out, "out")?;
        let parent = weft_ctx::get(parent)?;
        let cx = {
            let s = parent.state.lock();
            s.cx.child(s.cx.service.clone(), s.cx.method.clone())
        };
        write_out(out, "out", weft_ctx::register(Ctx::of(cx)))
    })
}

/// Cancel the calls made with `ctx`: those in flight end at once with
/// `WEFT_CANCELLED` (a blocking call returns it, a callback or queued
/// completion still arrives, once, carrying it; the answer, if one comes,
/// is dropped, and the server is not told), and calls started with `ctx`
/// afterwards are refused with it. Cannot be undone; contexts made from it
/// with `weft_ctx_child` are not affected. Thread-safe: meant to be called
/// from a thread other than the one waiting.
#[no_mangle]
pub extern "C" fn weft_ctx_cancel(ctx: *mut weft_ctx, err: *mut *mut weft_error) -> weft_code {
    guard(err, || {
        weft_ctx::get(ctx)?.cancel.cancel();
        Ok(())
    })
}

/// Free a context. NULL, freed and invalid handles are ignored. A server
/// handler's context belongs to its call: freeing it is refused (ignored);
/// it becomes invalid when the call is answered. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_ctx_free(ctx: *mut weft_ctx) {
    quiet((), || {
        if weft_ctx::get(ctx).is_ok_and(|c| c.call) {
            return;
        }
        let _ = weft_ctx::take(ctx);
    })
}

/// Give calls made with `ctx` a timeout of `timeout_ms` from when each
/// starts (the deadline inherited by a child context still applies, the
/// earlier wins); 0 removes it, so the client's default applies. Negative
/// values get `WEFT_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_ctx_set_timeout_ms(
    ctx: *mut weft_ctx,
    timeout_ms: i64,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let ctx = weft_ctx::get(ctx)?;
        if timeout_ms < 0 {
            return Err(Status::invalid_argument(format!(
                "timeout_ms {timeout_ms} is negative"
            )));
        }
        ctx.state.lock().timeout =
            (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms as u64));
        Ok(())
    })
}

/// Set `*out_ms` to the time left before the context's deadline in
/// milliseconds (a server handler's context: what the caller gave), or to
/// its own timeout when it has no deadline, or -1 when it has neither.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_ctx_remaining_ms(
    ctx: *const weft_ctx,
    out_ms: *mut i64,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(out_ms, "out_ms")?;
        let ctx = weft_ctx::get(ctx)?;
        let s = ctx.state.lock();
        let left = s.cx.remaining().or(s.timeout);
        let ms = left.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        write_out(out_ms, "out_ms", ms)
    })
}

/// Set metainfo `key` to `value` (NUL-terminated UTF-8) in `scope`
/// (`WEFT_SCOPE_*`), replacing an earlier value; `value` NULL removes the
/// key. NULL or non-UTF-8 key, or an unknown scope: `WEFT_INVALID_ARGUMENT`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_ctx_set(
    ctx: *mut weft_ctx,
    scope_id: i32,
    key: *const c_char,
    value: *const c_char,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let ctx = weft_ctx::get(ctx)?;
        let key = str_arg(key, "key")?;
        if key.is_empty() {
            return Err(Status::invalid_argument("key is empty"));
        }
        let value = if value.is_null() {
            None
        } else {
            Some(str_arg(value, "value")?)
        };
        let mut s = ctx.state.lock();
        let kv = scope(&mut s, scope_id)?;
        match value {
            Some(v) => kv.insert(key.to_owned(), v.to_owned()),
            None => {
                kv.remove(key);
            }
        }
        Ok(())
    })
}

/// Set `*out` to a copy of the value of `key` in `scope` (free it with
/// `weft_bytes_free`); `WEFT_NOT_FOUND` when absent. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_ctx_get(
    ctx: *const weft_ctx,
    scope_id: i32,
    key: *const c_char,
    out: *mut weft_bytes,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(out, "out")?;
        let ctx = weft_ctx::get(ctx)?;
        let key = str_arg(key, "key")?;
        let mut s = ctx.state.lock();
        let kv = scope(&mut s, scope_id)?;
        match kv.get(key) {
            Some(v) => write_out(out, "out", weft_bytes::text(v)),
            None => Err(Status::new(
                Code::NotFound,
                format!("no metainfo {key:?} in scope {scope_id}"),
            )),
        }
    })
}

/// Set `*out` to the number of entries in `scope`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_ctx_count(
    ctx: *const weft_ctx,
    scope_id: i32,
    out: *mut usize,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(out, "out")?;
        let ctx = weft_ctx::get(ctx)?;
        let mut s = ctx.state.lock();
        let n = scope(&mut s, scope_id)?.len();
        write_out(out, "out", n)
    })
}

/// Set `*key` and `*value` to copies of entry `index` of `scope`, in
/// insertion order (free both with `weft_bytes_free`); `WEFT_OUT_OF_RANGE`
/// past the end. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_ctx_entry(
    ctx: *const weft_ctx,
    scope_id: i32,
    index: usize,
    key: *mut weft_bytes,
    value: *mut weft_bytes,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(key, "key")?;
        check_out(value, "value")?;
        let ctx = weft_ctx::get(ctx)?;
        let mut s = ctx.state.lock();
        let kv = scope(&mut s, scope_id)?;
        let Some((k, v)) = kv.iter().nth(index) else {
            return Err(Status::new(
                Code::OutOfRange,
                format!(
                    "index {index} past the {} entries of scope {scope_id}",
                    kv.len()
                ),
            ));
        };
        write_out(key, "key", weft_bytes::text(k))?;
        write_out(value, "value", weft_bytes::text(v))
    })
}

/// Name the calling service (TTHeader's from-service), NUL-terminated UTF-8.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn weft_ctx_set_caller(
    ctx: *mut weft_ctx,
    caller: *const c_char,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let ctx = weft_ctx::get(ctx)?;
        let caller = str_arg(caller, "caller")?;
        ctx.state.lock().cx.caller = caller.to_owned().into();
        Ok(())
    })
}
