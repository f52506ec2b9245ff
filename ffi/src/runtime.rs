//! The runtime handle: the Tokio multi-thread runtime that clients and
//! servers made from it run on.

use std::{future::Future, sync::Arc};

use weft_core::{Code, Status};

use crate::{
    error::{guard, quiet, weft_code, weft_error, write_out},
    handle::handle_type,
};

/// Owns a Tokio runtime; shut down when the last handle, client or server
/// using it is gone.
#[derive(Debug)]
pub(crate) struct Runtime {
    rt: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.as_ref().expect("present until dropped").handle()
    }

    /// Run `fut` to completion on the calling thread, which must not be one
    /// of a runtime's own (blocking there would stall the tasks it runs).
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, Status> {
        not_on_weft_thread()?;
        Ok(self.handle().block_on(fut))
    }
}

/// Refuse a blocking call on one of Weft's own threads (inside a
/// callback), where it would stall the tasks that thread runs.
pub(crate) fn not_on_weft_thread() -> Result<(), Status> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Status::new(
            Code::FailedPrecondition,
            "a blocking weft call on one of Weft's own threads (inside a callback) \
             would stall it: use the callback or queue form there",
        ));
    }
    Ok(())
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // The last reference may go inside a callback on one of the
            // runtime's own threads, where waiting for it would deadlock.
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                drop(rt);
            }
        }
    }
}

/// A Tokio multi-thread runtime. Thread-safe.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct weft_runtime {
    _opaque: [u8; 0],
}

handle_type!(weft_runtime, Runtime, RUNTIMES, 0x10, "weft_runtime");

/// Start a runtime with `worker_threads` threads (0: one per CPU) and set
/// `*out` to its handle, which the caller frees with `weft_runtime_free`.
/// Clients and servers keep their runtime running after it is freed, until
/// they are freed too. Fails with `WEFT_INVALID_ARGUMENT` if `out` is NULL,
/// `WEFT_INTERNAL` if the threads cannot be started. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_runtime_new(
    worker_threads: u32,
    out: *mut *mut weft_runtime,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        crate::error::check_out(out, "out")?;
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.enable_all().thread_name("weft");
        if worker_threads > 0 {
            b.worker_threads(worker_threads as usize);
        }
        let rt = b
            .build()
            .map_err(|e| Status::internal(format!("starting the runtime: {e}")))?;
        write_out(
            out,
            "out",
            weft_runtime::register(Arc::new(Runtime { rt: Some(rt) })),
        )
    })
}

/// Free a runtime handle. NULL, freed and invalid handles are ignored.
/// The runtime stops once no client or server made from it is left; it
/// must not be freed from inside a Weft callback if it is the last user
/// (it is then stopped without waiting). Thread-safe.
#[no_mangle]
pub extern "C" fn weft_runtime_free(rt: *mut weft_runtime) {
    quiet((), || {
        let _ = weft_runtime::take(rt);
    })
}
