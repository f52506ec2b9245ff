//! Encode and decode of ThriftTest's `Xtruct` and `Insanity` and of a 1 MiB
//! binary field, in the binary and compact protocols:
//!
//! - `weft`: Weft's input protocols (`BinaryInput`, `CompactInput`, zero-copy
//!   and bounded) and output (`CompactOutput`; for binary, pilota's
//!   `TBinaryProtocol`, which Weft uses as is);
//! - `pilota`: Volo's codec, pilota's own input and output protocols;
//! - `apache`: Apache Thrift's `thrift` crate with code from its compiler.
//!
//! `cargo bench -p weft-benches --bench codec`

use std::{collections::BTreeMap, hint::black_box};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use faststr::FastStr;
use pilota::thrift::{
    binary::TBinaryProtocol,
    compact::{TCompactInputProtocol, TCompactOutputProtocol},
    Message,
};
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol as ApacheCompactIn,
    TCompactOutputProtocol as ApacheCompactOut, TSerializable,
};
use weft::thrift::{
    protocol::{CompactOutput, DecodeLimits},
    BinaryInput, CompactInput,
};
use weft_benches::{apache, types::thrift_test as pt};

const MIB: usize = 1 << 20;

// ===== the values, as ThriftTest's testInsanity uses them =====

fn pilota_xtruct(s: &'static str, n: i64) -> pt::Xtruct {
    pt::Xtruct {
        string_thing: Some(FastStr::from_static_str(s)),
        byte_thing: Some(n as i8),
        i32_thing: Some(n as i32),
        i64_thing: Some(n),
    }
}

fn pilota_insanity() -> pt::Insanity {
    let mut map = pilota::AHashMap::default();
    map.insert(pt::Numberz::FIVE, pt::UserId(5));
    map.insert(pt::Numberz::EIGHT, pt::UserId(8));
    pt::Insanity {
        user_map: Some(map),
        xtructs: Some(vec![
            pilota_xtruct("Goodbye4", 4),
            pilota_xtruct("Hello2", 2),
        ]),
    }
}

fn pilota_blob() -> pt::Blob {
    pt::Blob {
        data: Some(Bytes::from(
            (0..MIB).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        )),
    }
}

fn apache_xtruct(s: &str, n: i64) -> apache::Xtruct {
    apache::Xtruct {
        string_thing: Some(s.to_owned()),
        byte_thing: Some(n as i8),
        i32_thing: Some(n as i32),
        i64_thing: Some(n),
    }
}

fn apache_insanity() -> apache::Insanity {
    let mut map = BTreeMap::new();
    map.insert(apache::Numberz::FIVE, 5);
    map.insert(apache::Numberz::EIGHT, 8);
    apache::Insanity {
        user_map: Some(map),
        xtructs: Some(vec![
            apache_xtruct("Goodbye4", 4),
            apache_xtruct("Hello2", 2),
        ]),
    }
}

fn apache_blob() -> apache::Blob {
    apache::Blob {
        data: Some((0..MIB).map(|i| (i % 251) as u8).collect()),
    }
}

// ===== encoders and decoders =====

fn binary_bytes<M: Message>(m: &M) -> Bytes {
    let mut dst = BytesMut::new();
    m.encode(&mut TBinaryProtocol::new(&mut dst, false))
        .unwrap();
    dst.freeze()
}

fn compact_bytes<M: Message>(m: &M) -> Bytes {
    let mut dst = BytesMut::new();
    m.encode(&mut CompactOutput::new(&mut dst)).unwrap();
    dst.freeze()
}

fn bench_one<M, A>(c: &mut Criterion, name: &str, pilota_value: M, apache_value: A)
where
    M: Message + PartialEq + std::fmt::Debug,
    A: TSerializable + PartialEq + std::fmt::Debug,
{
    let binary = binary_bytes(&pilota_value);
    let compact = compact_bytes(&pilota_value);

    // The three implementations agree on the bytes.
    let mut v = Vec::new();
    apache_value
        .write_to_out_protocol(&mut TBinaryOutputProtocol::new(&mut v, true))
        .unwrap();
    assert_eq!(v, binary, "{name}: binary encodings differ");
    v.clear();
    apache_value
        .write_to_out_protocol(&mut ApacheCompactOut::new(&mut v))
        .unwrap();
    if name != "Insanity" {
        // (map order is a hash map's in pilota, sorted in Apache's)
        assert_eq!(v, compact, "{name}: compact encodings differ");
    }

    let mut g = c.benchmark_group(format!("encode/{name}"));
    g.throughput(Throughput::Bytes(binary.len() as u64));
    let mut dst = BytesMut::with_capacity(binary.len() * 2 + 64);
    g.bench_function(BenchmarkId::new("binary", "weft+pilota"), |b| {
        b.iter(|| {
            dst.clear();
            black_box(&pilota_value)
                .encode(&mut TBinaryProtocol::new(&mut dst, false))
                .unwrap();
            black_box(dst.len())
        })
    });
    let mut out: Vec<u8> = Vec::with_capacity(binary.len() * 2 + 64);
    g.bench_function(BenchmarkId::new("binary", "apache"), |b| {
        b.iter(|| {
            out.clear();
            black_box(&apache_value)
                .write_to_out_protocol(&mut TBinaryOutputProtocol::new(&mut out, true))
                .unwrap();
            black_box(out.len())
        })
    });
    g.throughput(Throughput::Bytes(compact.len() as u64));
    g.bench_function(BenchmarkId::new("compact", "weft"), |b| {
        b.iter(|| {
            dst.clear();
            black_box(&pilota_value)
                .encode(&mut CompactOutput::new(&mut dst))
                .unwrap();
            black_box(dst.len())
        })
    });
    g.bench_function(BenchmarkId::new("compact", "pilota"), |b| {
        b.iter(|| {
            dst.clear();
            black_box(&pilota_value)
                .encode(&mut TCompactOutputProtocol::new(&mut dst, false))
                .unwrap();
            black_box(dst.len())
        })
    });
    g.bench_function(BenchmarkId::new("compact", "apache"), |b| {
        b.iter(|| {
            out.clear();
            black_box(&apache_value)
                .write_to_out_protocol(&mut ApacheCompactOut::new(&mut out))
                .unwrap();
            black_box(out.len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("decode/{name}"));
    g.throughput(Throughput::Bytes(binary.len() as u64));
    g.bench_function(BenchmarkId::new("binary", "weft"), |b| {
        b.iter(|| {
            let mut buf = binary.clone();
            let m = M::decode(&mut BinaryInput::new(&mut buf, DecodeLimits::default())).unwrap();
            black_box(m)
        })
    });
    g.bench_function(BenchmarkId::new("binary", "pilota"), |b| {
        b.iter(|| {
            let mut buf = binary.clone();
            let m = M::decode(&mut TBinaryProtocol::new(&mut buf, true)).unwrap();
            black_box(m)
        })
    });
    g.bench_function(BenchmarkId::new("binary", "apache"), |b| {
        b.iter(|| {
            let mut p = TBinaryInputProtocol::new(&binary[..], true);
            black_box(A::read_from_in_protocol(&mut p).unwrap())
        })
    });
    g.throughput(Throughput::Bytes(compact.len() as u64));
    g.bench_function(BenchmarkId::new("compact", "weft"), |b| {
        b.iter(|| {
            let mut buf = compact.clone();
            let m = M::decode(&mut CompactInput::new(&mut buf, DecodeLimits::default())).unwrap();
            black_box(m)
        })
    });
    g.bench_function(BenchmarkId::new("compact", "pilota"), |b| {
        b.iter(|| {
            let mut buf = compact.clone();
            let m = M::decode(&mut TCompactInputProtocol::new(&mut buf)).unwrap();
            black_box(m)
        })
    });
    g.bench_function(BenchmarkId::new("compact", "apache"), |b| {
        b.iter(|| {
            let mut p = ApacheCompactIn::new(&compact[..]);
            black_box(A::read_from_in_protocol(&mut p).unwrap())
        })
    });
    g.finish();

    // Decoders agree with each other and with the value.
    let mut buf = binary.clone();
    let w = M::decode(&mut BinaryInput::new(&mut buf, DecodeLimits::default())).unwrap();
    assert_eq!(w, pilota_value, "{name}: weft binary round trip");
    let mut buf = compact.clone();
    let w = M::decode(&mut CompactInput::new(&mut buf, DecodeLimits::default())).unwrap();
    assert_eq!(w, pilota_value, "{name}: weft compact round trip");
    let a = A::read_from_in_protocol(&mut ApacheCompactIn::new(&compact[..])).unwrap();
    assert_eq!(a, apache_value, "{name}: apache reads weft's compact");
}

fn codecs(c: &mut Criterion) {
    bench_one(
        c,
        "Xtruct",
        pilota_xtruct("Hello2", 2),
        apache_xtruct("Hello2", 2),
    );
    bench_one(c, "Insanity", pilota_insanity(), apache_insanity());
    bench_one(c, "Blob-1MiB", pilota_blob(), apache_blob());
}

criterion_group! {
    name = benches;
    // Short: 33 benchmarks; the 1 MiB ones dominate and settle quickly.
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = codecs
}
criterion_main!(benches);
