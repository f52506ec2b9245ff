//! The blocking call (`weft_client_call`) drives its own I/O on the
//! calling thread: it needs none of the runtime's workers, so it costs no
//! hop to a worker and back, and completes even while every worker is busy
//! in a callback. Driven through the C functions, from Rust, against a Weft
//! Rust echo server over loopback.

use std::{
    ffi::c_void,
    ptr::null_mut,
    sync::{Arc, Condvar, Mutex},
    time::Duration,
};

use weft::{client::*, ctx::*, error::WEFT_OK, runtime::*};
use weft_core::ServerBuilder;
use weft_interop::EchoHandler;

/// What the blocking callback saw: entered, then released by the test or
/// by its own watchdog.
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, Option<bool>)>,
    cv: Condvar,
}

/// Holds the only worker of the shim's runtime until the test releases it
/// (or 10 s pass: then the record says the watchdog did).
unsafe extern "C" fn hold_worker(user: *mut c_void, c: *mut weft_completion) {
    // SAFETY: `user` is the `Gate` the test keeps alive until this has run.
    let gate = unsafe { &*(user as *const Gate) };
    let mut s = gate.state.lock().unwrap();
    s.0 = true;
    gate.cv.notify_all();
    let (mut s, timeout) = gate
        .cv
        .wait_timeout_while(s, Duration::from_secs(10), |s| s.1.is_none())
        .unwrap();
    if timeout.timed_out() {
        s.1 = Some(false);
    }
    gate.cv.notify_all();
    drop(s);
    weft_completion_release(c);
}

fn add_args(a: i64, b: i64) -> Vec<u8> {
    let mut args = vec![10, 0, 1];
    args.extend_from_slice(&a.to_be_bytes());
    args.extend_from_slice(&[10, 0, 2]);
    args.extend_from_slice(&b.to_be_bytes());
    args.push(0);
    args
}

fn empty_reply() -> weft_reply {
    weft_reply {
        result: weft::weft_bytes {
            data: std::ptr::null(),
            len: 0,
            owner: null_mut(),
        },
        exception_id: 0,
        exception: std::ptr::null(),
        exception_len: 0,
    }
}

#[test]
fn a_blocking_call_completes_while_every_worker_is_busy() {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = server_rt
        .block_on(weft_interop::serve(
            "127.0.0.1:0",
            ServerBuilder::new(),
            EchoHandler::default(),
        ))
        .unwrap();
    let (mut rt, mut opts, mut client) = (null_mut(), null_mut(), null_mut());
    assert_eq!(weft_runtime_new(1, &mut rt, null_mut()), WEFT_OK);
    assert_eq!(weft_client_options_new(&mut opts, null_mut()), WEFT_OK);
    let a = std::ffi::CString::new(server.local_addr().to_string()).unwrap();
    assert_eq!(
        weft_client_options_add_address(opts, a.as_ptr(), null_mut()),
        WEFT_OK
    );
    assert_eq!(weft_client_new(rt, opts, &mut client, null_mut()), WEFT_OK);
    let args = add_args(20, 22);

    // Occupy the runtime's one worker with a completion callback.
    let gate = Arc::new(Gate::default());
    let rc = weft_client_call_async(
        client,
        c"add".as_ptr(),
        args.as_ptr(),
        args.len(),
        null_mut(),
        1,
        Some(hold_worker),
        Arc::as_ptr(&gate) as *mut c_void,
        null_mut(),
    );
    assert_eq!(rc, WEFT_OK);
    drop(
        gate.cv
            .wait_while(gate.state.lock().unwrap(), |s| !s.0)
            .unwrap(),
    );

    // Blocking calls, with and without a context, answered meanwhile.
    for with_ctx in [false, true] {
        let mut ctx = null_mut();
        if with_ctx {
            assert_eq!(weft_ctx_new(&mut ctx, null_mut()), WEFT_OK);
            assert_eq!(weft_ctx_set_timeout_ms(ctx, 5000, null_mut()), WEFT_OK);
        }
        let mut reply = empty_reply();
        let rc = weft_client_call(
            client,
            c"add".as_ptr(),
            args.as_ptr(),
            args.len(),
            ctx,
            &mut reply,
            null_mut(),
        );
        assert_eq!(rc, WEFT_OK);
        // The result struct: success (0: i64) = 42.
        // SAFETY: a successful call's reply holds `len` readable bytes.
        let got = unsafe { std::slice::from_raw_parts(reply.result.data, reply.result.len) };
        assert_eq!(got[..3], [10, 0, 0]);
        assert_eq!(i64::from_be_bytes(got[3..11].try_into().unwrap()), 42);
        weft_reply_free(&mut reply);
        weft_ctx_free(ctx);
    }

    let mut s = gate.state.lock().unwrap();
    let released_by_watchdog = s.1.is_some();
    s.1.get_or_insert(true);
    gate.cv.notify_all();
    drop(s);
    assert!(
        !released_by_watchdog,
        "the blocking calls waited for the busy worker (its callback's watchdog let it go)"
    );

    // With caller I/O off, blocking calls go through the (now free) worker.
    let mut shared = null_mut();
    assert_eq!(
        weft_client_options_set_caller_io(opts, false, null_mut()),
        WEFT_OK
    );
    assert_eq!(weft_client_new(rt, opts, &mut shared, null_mut()), WEFT_OK);
    let mut reply = empty_reply();
    let rc = weft_client_call(
        shared,
        c"add".as_ptr(),
        args.as_ptr(),
        args.len(),
        null_mut(),
        &mut reply,
        null_mut(),
    );
    assert_eq!(rc, WEFT_OK);
    weft_reply_free(&mut reply);
    weft_client_free(shared);

    weft_client_free(client);
    weft_client_options_free(opts);
    // The last reference to the runtime: dropping it waits for its worker,
    // so the callback is done with `gate` before it goes.
    weft_runtime_free(rt);
    drop(gate);
    server_rt.block_on(server.shutdown());
}

/// A blocking call made a while after the server closed the thread's
/// connection (here: the server restarted on the same port) sees it closed
/// before it picks it, and goes out on a new one: the calling thread polls
/// its sockets first when its previous call is not just over.
#[test]
fn a_blocking_call_after_the_server_closed_the_connection_takes_a_new_one() {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let serve = |addr: &str| {
        server_rt
            .block_on(weft_interop::serve(
                addr,
                ServerBuilder::new(),
                EchoHandler::default(),
            ))
            .unwrap()
    };
    let server = serve("127.0.0.1:0");
    let addr = server.local_addr().to_string();
    let (mut rt, mut opts, mut client) = (null_mut(), null_mut(), null_mut());
    assert_eq!(weft_runtime_new(1, &mut rt, null_mut()), WEFT_OK);
    assert_eq!(weft_client_options_new(&mut opts, null_mut()), WEFT_OK);
    let a = std::ffi::CString::new(addr.clone()).unwrap();
    assert_eq!(
        weft_client_options_add_address(opts, a.as_ptr(), null_mut()),
        WEFT_OK
    );
    // One attempt: a call on the dead connection would not be retried.
    assert_eq!(
        weft_client_options_set_retries(opts, 1, 0.0, null_mut()),
        WEFT_OK
    );
    assert_eq!(weft_client_new(rt, opts, &mut client, null_mut()), WEFT_OK);
    let args = add_args(20, 22);
    let call = || {
        let mut reply = empty_reply();
        let mut err = null_mut();
        let rc = weft_client_call(
            client,
            c"add".as_ptr(),
            args.as_ptr(),
            args.len(),
            null_mut(),
            &mut reply,
            &mut err,
        );
        let message = if rc == WEFT_OK {
            String::new()
        } else {
            // SAFETY: a failed call sets `err` to an error the caller owns.
            let m = unsafe { std::ffi::CStr::from_ptr(weft::error::weft_error_message(err)) };
            let m = m.to_string_lossy().into_owned();
            weft::error::weft_error_free(err);
            m
        };
        weft_reply_free(&mut reply);
        (rc, message)
    };
    assert_eq!(call(), (WEFT_OK, String::new()));
    server_rt.block_on(server.shutdown());
    let server = serve(&addr);
    // Long enough for the close to arrive, and for the call not to count
    // as back to back with the last one.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(call(), (WEFT_OK, String::new()));

    weft_client_free(client);
    weft_client_options_free(opts);
    weft_runtime_free(rt);
    server_rt.block_on(server.shutdown());
}
