//! The completion queue: calls end into it, and a file descriptor becomes
//! readable while it holds completions, so an event loop (Python's asyncio,
//! Go's netpoller, epoll) waits for many calls without a thread per call.

use std::{collections::VecDeque, ffi::c_int, sync::Arc};

use parking_lot::Mutex;
use weft_core::{Code, Status};

use crate::{
    client::{weft_completion, CallResult},
    error::{check_out, guard, quiet, weft_code, weft_error, write_out},
    handle::handle_type,
};

/// One finished call, kept in Rust form until taken (handles are made on
/// the taking thread, and only for what is taken).
pub(crate) struct Done {
    pub(crate) tag: u64,
    pub(crate) result: CallResult,
}

/// Completions and the pipe that signals them.
pub(crate) struct Queue {
    done: Mutex<VecDeque<Done>>,
    read_fd: c_int,
    write_fd: c_int,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("read_fd", &self.read_fd)
            .finish_non_exhaustive()
    }
}

fn nonblocking_pipe() -> std::io::Result<(c_int, c_int)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` is a writable array of two ints, as pipe(2) requires.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for fd in fds {
        // SAFETY: `fd` was just returned by pipe(2) and is owned here.
        let ok = unsafe {
            libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) == 0
                && libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0
        };
        if !ok {
            let e = std::io::Error::last_os_error();
            for fd in fds {
                // SAFETY: both are ours and not yet shared.
                unsafe { libc::close(fd) };
            }
            return Err(e);
        }
    }
    Ok((fds[0], fds[1]))
}

impl Queue {
    fn new() -> std::io::Result<Queue> {
        let (read_fd, write_fd) = nonblocking_pipe()?;
        Ok(Queue {
            done: Mutex::new(VecDeque::new()),
            read_fd,
            write_fd,
        })
    }

    /// Add a completion; the pipe gets a byte when the queue stops being
    /// empty, so it is readable exactly while completions wait.
    pub(crate) fn push(&self, done: Done) {
        let mut q = self.done.lock();
        q.push_back(done);
        if q.len() == 1 {
            let b = 1u8;
            // SAFETY: writes one byte from a live local to our own pipe.
            // Non-blocking: a full pipe already signals readability.
            unsafe { libc::write(self.write_fd, (&b as *const u8).cast(), 1) };
        }
    }

    fn take(&self, max: usize) -> Vec<Done> {
        let mut q = self.done.lock();
        let n = max.min(q.len());
        let taken: Vec<Done> = q.drain(..n).collect();
        if q.is_empty() {
            // Under the lock, so no push can signal in between.
            let mut sink = [0u8; 64];
            loop {
                // SAFETY: reads into a live local buffer of the given size
                // from our own non-blocking pipe.
                let r = unsafe { libc::read(self.read_fd, sink.as_mut_ptr().cast(), sink.len()) };
                if r <= 0 {
                    break;
                }
            }
        }
        taken
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: both descriptors are owned by this queue and closed once.
        unsafe {
            libc::close(self.read_fd);
            libc::close(self.write_fd);
        }
    }
}

/// A completion queue with a pollable file descriptor. Thread-safe.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct weft_queue {
    _opaque: [u8; 0],
}

handle_type!(weft_queue, Queue, QUEUES, 0x30, "weft_queue");

/// Create a completion queue and set `*out` to it; free with
/// `weft_queue_free`. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_queue_new(
    out: *mut *mut weft_queue,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(out, "out")?;
        let q = Queue::new().map_err(|e| Status::internal(format!("creating the pipe: {e}")))?;
        write_out(out, "out", weft_queue::register(Arc::new(q)))
    })
}

/// Free a queue. NULL, freed and invalid handles are ignored. Calls still
/// in flight into it complete into nothing (their results are dropped);
/// completions not taken are freed. The descriptor closes once the last of
/// them is done, so stop polling it first. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_queue_free(queue: *mut weft_queue) {
    quiet((), || {
        let _ = weft_queue::take(queue);
    })
}

/// Set `*fd` to a descriptor that is readable while the queue holds
/// completions (level-triggered: poll, epoll or an event loop's reader; do
/// not read or close it). Valid until the queue is freed. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_queue_fd(
    queue: *const weft_queue,
    fd: *mut c_int,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let q = weft_queue::get(queue)?;
        write_out(fd, "fd", q.read_fd)
    })
}

/// Move up to `max` completions into `out[0..max]` without waiting, and set
/// `*taken` to how many; each is the caller's to release with
/// `weft_completion_release`. `out` may be NULL only when `max` is 0.
/// Thread-safe: several threads may take from one queue.
#[no_mangle]
pub extern "C" fn weft_queue_take(
    queue: *const weft_queue,
    out: *mut weft_completion,
    max: usize,
    taken: *mut usize,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        check_out(taken, "taken")?;
        write_out(taken, "taken", 0)?;
        let q = weft_queue::get(queue)?;
        if max > 0 && out.is_null() {
            return Err(Status::invalid_argument("out is null with max > 0"));
        }
        let done = q.take(max);
        let n = done.len();
        for (i, d) in done.into_iter().enumerate() {
            // SAFETY: `out` is not null and the header documents it as an
            // array of at least `max` writable completions; `i < n <= max`.
            unsafe { out.add(i).write(weft_completion::of(d.tag, d.result)) };
        }
        write_out(taken, "taken", n)
    })
}

/// Wait until the queue holds a completion, or `timeout_ms` passes (-1:
/// no limit): `WEFT_OK` when one is ready, `WEFT_DEADLINE_EXCEEDED` on
/// timeout. For programs without an event loop of their own. Thread-safe.
#[no_mangle]
pub extern "C" fn weft_queue_wait(
    queue: *const weft_queue,
    timeout_ms: c_int,
    err: *mut *mut weft_error,
) -> weft_code {
    guard(err, || {
        let q = weft_queue::get(queue)?;
        let mut p = libc::pollfd {
            fd: q.read_fd,
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one live pollfd, our own descriptor.
            let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
            match r {
                1.. => return Ok(()),
                0 => return Err(Status::new(Code::DeadlineExceeded, "no completion in time")),
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(Status::internal(format!("poll: {e}")));
                    }
                }
            }
        }
    })
}
