//! The C ABI's raw messages: its server codec on a stream of frames in
//! arbitrary chunks (every args struct it captures must be exactly one
//! struct, as `validate_struct` checks what C hands over), its client codec
//! on response frames (the result struct, and a declared exception's range
//! inside it, both valid structs), and `validate_struct` on raw input.
#![no_main]

use bytes::{Bytes, BytesMut};
use ffi::fuzzing::{validate_struct, Client, Decoded, Server};
use libfuzzer_sys::fuzz_target;
use weft_core::{Context, Limits};
use weft_fuzz::{pick, Chunks, TRANSPORTS};
use weft_thrift::Protocol;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    let protocol = if sel & 0x80 == 0 {
        Protocol::Binary
    } else {
        Protocol::Compact
    };
    let limits = Limits::default();
    let _ = validate_struct(protocol, &Bytes::copy_from_slice(data));
    let chunks = Chunks::new(data);
    let mut buf = BytesMut::new();
    if sel & 0x40 == 0 {
        let mut server = Server::new(&limits);
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match server.decode(&mut buf) {
                    Ok(Some(Decoded::Request { args, protocol })) => {
                        if let Err(e) = validate_struct(protocol, &args) {
                            panic!("captured args are not one struct: {e}: {args:02x?}");
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
        return;
    }
    let transport = TRANSPORTS[pick(sel, TRANSPORTS.len())];
    // A header names its own protocol, which may not be the client's.
    let check = !transport.has_header();
    let client = Client::new(transport, protocol, &limits);
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match client.decode_frame(&mut buf) {
                Ok(Some((seq, raw))) => {
                    let mut cx = Context::new("svc", "method");
                    cx.seq_id = seq;
                    if let (Ok((result, exception)), true) = (client.decode(&mut cx, raw), check) {
                        if let Err(e) = validate_struct(protocol, &result) {
                            panic!("a result that is not one struct: {e}: {result:02x?}");
                        }
                        if let Some((_, range)) = exception {
                            let exc = result.slice(range);
                            if let Err(e) = validate_struct(protocol, &exc) {
                                panic!("an exception that is not one struct: {e}: {exc:02x?}");
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
