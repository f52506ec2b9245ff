//! The Apache Thrift cross test on generated code: a `ThriftTest` and
//! `SecondService` server with the semantics of Apache Thrift's cross-test
//! servers (`test/py/TestServer.py`, `test/rs/src/bin/test_server.rs`), and
//! the client battery of its `TestClient`s, checking every result.

use std::{collections::BTreeMap, time::Duration};

use weft::{
    core::{
        bytes::Bytes, faststr::FastStr, tower, Address, Client, ClientBuilder, ConnectionMode,
        Context, Request, Response, ServerBuilder, ServerHandle, Status,
    },
    thrift::{route, Protocol, Route, Routed, ThriftClientCodec, ThriftServerCodec, Transport},
};

use crate::thrift_test::thrifttest::*;

type AHashMap<K, V> = weft::thrift::pilota::AHashMap<K, V>;
type AHashSet<T> = weft::thrift::pilota::AHashSet<T>;

// ===== server =====

/// `ThriftTest` as every Apache Thrift cross-test server implements it.
#[derive(Debug, Clone, Default)]
pub struct ThriftTestHandler;

impl ThriftTest for ThriftTestHandler {
    async fn test_void(&self, _cx: &mut Context) -> Result<(), Status> {
        Ok(())
    }

    async fn test_string(&self, _cx: &mut Context, thing: FastStr) -> Result<FastStr, Status> {
        Ok(thing)
    }

    async fn test_bool(&self, _cx: &mut Context, thing: bool) -> Result<bool, Status> {
        Ok(thing)
    }

    async fn test_byte(&self, _cx: &mut Context, thing: i8) -> Result<i8, Status> {
        Ok(thing)
    }

    async fn test_i32(&self, _cx: &mut Context, thing: i32) -> Result<i32, Status> {
        Ok(thing)
    }

    async fn test_i64(&self, _cx: &mut Context, thing: i64) -> Result<i64, Status> {
        Ok(thing)
    }

    async fn test_double(&self, _cx: &mut Context, thing: f64) -> Result<f64, Status> {
        Ok(thing)
    }

    async fn test_binary(&self, _cx: &mut Context, thing: Bytes) -> Result<Bytes, Status> {
        Ok(thing)
    }

    async fn test_struct(&self, _cx: &mut Context, thing: Xtruct) -> Result<Xtruct, Status> {
        Ok(thing)
    }

    async fn test_nest(&self, _cx: &mut Context, thing: Xtruct2) -> Result<Xtruct2, Status> {
        Ok(thing)
    }

    async fn test_map(
        &self,
        _cx: &mut Context,
        thing: AHashMap<i32, i32>,
    ) -> Result<AHashMap<i32, i32>, Status> {
        Ok(thing)
    }

    async fn test_string_map(
        &self,
        _cx: &mut Context,
        thing: AHashMap<FastStr, FastStr>,
    ) -> Result<AHashMap<FastStr, FastStr>, Status> {
        Ok(thing)
    }

    async fn test_set(
        &self,
        _cx: &mut Context,
        thing: AHashSet<i32>,
    ) -> Result<AHashSet<i32>, Status> {
        Ok(thing)
    }

    async fn test_list(&self, _cx: &mut Context, thing: Vec<i32>) -> Result<Vec<i32>, Status> {
        Ok(thing)
    }

    async fn test_enum(&self, _cx: &mut Context, thing: Numberz) -> Result<Numberz, Status> {
        Ok(thing)
    }

    async fn test_typedef(&self, _cx: &mut Context, thing: UserId) -> Result<UserId, Status> {
        Ok(thing)
    }

    /// `{-4 => {-4 => -4, ..., -1 => -1}, 4 => {1 => 1, ..., 4 => 4}}`.
    async fn test_map_map(
        &self,
        _cx: &mut Context,
        _hello: i32,
    ) -> Result<AHashMap<i32, AHashMap<i32, i32>>, Status> {
        Ok(map_map())
    }

    /// `{1 => {TWO => argument, THREE => argument}, 2 => {SIX => Insanity{}}}`.
    async fn test_insanity(
        &self,
        _cx: &mut Context,
        argument: Insanity,
    ) -> Result<AHashMap<UserId, AHashMap<Numberz, Insanity>>, Status> {
        Ok(insanity_result(&argument))
    }

    /// `Xtruct{"Hello2", arg0, arg1, arg2}`.
    async fn test_multi(
        &self,
        _cx: &mut Context,
        arg0: i8,
        arg1: i32,
        arg2: i64,
        _arg3: AHashMap<i16, FastStr>,
        _arg4: Numberz,
        _arg5: UserId,
    ) -> Result<Xtruct, Status> {
        Ok(Xtruct {
            string_thing: Some("Hello2".into()),
            byte_thing: Some(arg0),
            i32_thing: Some(arg1),
            i64_thing: Some(arg2),
        })
    }

    /// `Xception{1001, arg}` for "Xception", an undeclared error for
    /// "TException", nothing otherwise.
    async fn test_exception(
        &self,
        _cx: &mut Context,
        arg: FastStr,
    ) -> Result<(), ThriftTestTestExceptionError> {
        match arg.as_str() {
            "Xception" => Err(Xception {
                error_code: Some(1001),
                message: Some(arg),
            }
            .into()),
            "TException" => Err(Status::internal("This is a TException").into()),
            _ => Ok(()),
        }
    }

    async fn test_multi_exception(
        &self,
        _cx: &mut Context,
        arg0: FastStr,
        arg1: FastStr,
    ) -> Result<Xtruct, ThriftTestTestMultiExceptionError> {
        match arg0.as_str() {
            "Xception" => Err(Xception {
                error_code: Some(1001),
                message: Some("This is an Xception".into()),
            }
            .into()),
            "Xception2" => Err(Xception2 {
                error_code: Some(2002),
                struct_thing: Some(Xtruct {
                    string_thing: Some("This is an Xception2".into()),
                    ..Default::default()
                }),
            }
            .into()),
            _ => Ok(Xtruct {
                string_thing: Some(arg1),
                ..Default::default()
            }),
        }
    }

    async fn test_oneway(&self, _cx: &mut Context, seconds_to_sleep: i32) -> Result<(), Status> {
        tokio::time::sleep(Duration::from_secs(seconds_to_sleep.max(0) as u64)).await;
        Ok(())
    }
}

/// `SecondService` as the cross-test servers implement it.
#[derive(Debug, Clone, Default)]
pub struct SecondServiceHandler;

impl SecondService for SecondServiceHandler {
    async fn secondtest_string(
        &self,
        _cx: &mut Context,
        thing: FastStr,
    ) -> Result<FastStr, Status> {
        Ok(format!("testString(\"{thing}\")").into())
    }
}

fn map_map() -> AHashMap<i32, AHashMap<i32, i32>> {
    let mut m = AHashMap::default();
    m.insert(-4, (-4..0).map(|i| (i, i)).collect());
    m.insert(4, (1..5).map(|i| (i, i)).collect());
    m
}

fn insanity_result(argument: &Insanity) -> AHashMap<UserId, AHashMap<Numberz, Insanity>> {
    let mut first = AHashMap::default();
    first.insert(Numberz::TWO, argument.clone());
    first.insert(Numberz::THREE, argument.clone());
    let mut second = AHashMap::default();
    second.insert(Numberz::SIX, Insanity::default());
    let mut m = AHashMap::default();
    m.insert(UserId(1), first);
    m.insert(UserId(2), second);
    m
}

/// The request of a server for both services.
pub type CrossRequest = Routed<ThriftTestRequest, SecondServiceRequest>;
/// The response of a server for both services.
pub type CrossResponse = Routed<ThriftTestResponse, SecondServiceResponse>;

/// Serve `ThriftTest` and `SecondService` on `addr`: plain calls go to
/// `ThriftTest` (and `secondtestString` to `SecondService`),
/// `TMultiplexedProtocol` calls to the service they name. Every transport
/// and protocol is served on the one port.
pub async fn serve(addr: &Address) -> std::io::Result<ServerHandle> {
    let builder = ServerBuilder::new().drain_timeout(Duration::from_secs(2));
    let limits = builder.limits_ref().clone();
    let service = Route::new(
        ThriftTestServer::new(ThriftTestHandler),
        SecondServiceServer::new(SecondServiceHandler),
    );
    builder
        .serve(
            addr,
            move || ThriftServerCodec::<CrossRequest, CrossResponse>::new(&limits),
            service,
        )
        .await
}

// ===== client =====

/// Parse Apache's cross-test `--protocol` and `--transport` values: the
/// protocol, whether it goes through `TMultiplexedProtocol`, the transport.
pub fn parse_flags(protocol: &str, transport: &str) -> Result<(Protocol, bool, Transport), String> {
    let (proto, multi, header) = match protocol {
        "binary" => (Protocol::Binary, false, false),
        "compact" => (Protocol::Compact, false, false),
        "header" => (Protocol::Binary, false, true),
        "multi" => (Protocol::Binary, true, false),
        "multic" => (Protocol::Compact, true, false),
        "multih" => (Protocol::Binary, true, true),
        other => return Err(format!("unknown protocol {other:?}")),
    };
    let transport = match (transport, header) {
        // Apache's header protocol over framed frames each THeader frame.
        ("framed", true) => Transport::FramedTHeader,
        ("buffered", true) => Transport::THeader,
        ("buffered", _) => Transport::Buffered,
        ("framed", _) => Transport::Framed,
        (other, _) => return Err(format!("unknown transport {other:?}")),
    };
    Ok((proto, multi, transport))
}

/// The Weft client both typed clients of [`clients`] share.
pub type SharedClient = Client<ThriftClientCodec<CrossRequest, CrossResponse>>;
/// The `ThriftTest` client of [`clients`].
pub type CrossTestClient = ThriftTestClient<route::First<SharedClient, SecondServiceRequest>>;
/// The `SecondService` client of [`clients`].
pub type CrossSecondClient = SecondServiceClient<route::Second<SharedClient, ThriftTestRequest>>;

/// Clients of both services at `addr`, over one Weft client: calls of both
/// go over the same connection (one at a time, pooled), as Apache's
/// `TMultiplexedProtocol`s over one transport do, so a single-threaded
/// Apache server (`TSimpleServer`) serves both. With `multiplexed`, each
/// call names its service (`ThriftTest:testVoid`).
pub fn clients(
    addr: &Address,
    protocol: Protocol,
    multiplexed: bool,
    transport: Transport,
) -> (CrossTestClient, CrossSecondClient) {
    let builder = ClientBuilder::new(addr.clone())
        .mode(ConnectionMode::Pooled)
        .timeout(Duration::from_secs(10));
    let codec = ThriftClientCodec::new(transport, protocol, builder.limits_ref());
    let codec = if multiplexed {
        codec.multiplexed_per_call()
    } else {
        codec
    };
    let (first, second) = route::split(builder.build(codec));
    (
        ThriftTestClient::from_service(first),
        SecondServiceClient::from_service(second),
    )
}

macro_rules! check {
    ($errors:ident, $what:expr, $got:expr, $want:expr) => {{
        let (got, want) = ($got, $want);
        if got != want {
            $errors.push(format!("{}: got {:?}, want {:?}", $what, got, want));
        }
    }};
}

fn xtruct(s: &str, b: i8, i: i32, l: i64) -> Xtruct {
    Xtruct {
        string_thing: Some(FastStr::new(s)),
        byte_thing: Some(b),
        i32_thing: Some(i),
        i64_thing: Some(l),
    }
}

/// Call every method as Apache's `TestClient`s do and check every result.
/// Returns what went wrong, empty when all is well.
pub async fn battery<T, U>(
    client: &ThriftTestClient<T>,
    second: Option<&SecondServiceClient<U>>,
) -> Vec<String>
where
    T: tower::Service<
            Request<ThriftTestRequest>,
            Response = Response<ThriftTestResponse>,
            Error = Status,
        > + Clone,
    U: tower::Service<
            Request<SecondServiceRequest>,
            Response = Response<SecondServiceResponse>,
            Error = Status,
        > + Clone,
{
    let mut e: Vec<String> = Vec::new();
    macro_rules! call {
        ($what:expr, $fut:expr) => {
            match $fut.await {
                Ok(v) => Some(v),
                Err(err) => {
                    e.push(format!("{}: {}", $what, err));
                    None
                }
            }
        };
    }

    call!("testVoid", client.test_void());
    for s in ["", "Test", "ünicode ☃ 🦀", &"x".repeat(10_000)] {
        if let Some(v) = call!("testString", client.test_string(FastStr::new(s))) {
            check!(e, "testString", v.as_str(), s);
        }
    }
    for b in [true, false] {
        if let Some(v) = call!("testBool", client.test_bool(b)) {
            check!(e, "testBool", v, b);
        }
    }
    for n in [1i8, 0, -1, i8::MIN, i8::MAX] {
        if let Some(v) = call!("testByte", client.test_byte(n)) {
            check!(e, "testByte", v, n);
        }
    }
    for n in [-1i32, 0, 1, i32::MIN, i32::MAX] {
        if let Some(v) = call!("testI32", client.test_i32(n)) {
            check!(e, "testI32", v, n);
        }
    }
    for n in [0i64, -34359738368, i64::MIN, i64::MAX] {
        if let Some(v) = call!("testI64", client.test_i64(n)) {
            check!(e, "testI64", v, n);
        }
    }
    for d in [
        -5.2098523,
        0.0,
        -0.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        1e-300,
        f64::INFINITY,
    ] {
        if let Some(v) = call!("testDouble", client.test_double(d)) {
            check!(e, "testDouble", v.to_bits(), d.to_bits());
        }
    }
    let bin = Bytes::from((0..=255u8).collect::<Vec<_>>());
    if let Some(v) = call!("testBinary", client.test_binary(bin.clone())) {
        check!(e, "testBinary", v, bin);
    }
    let x = xtruct("Zero", 1, -3, -5);
    if let Some(v) = call!("testStruct", client.test_struct(x.clone())) {
        check!(e, "testStruct", v, x.clone());
    }
    let nest = Xtruct2 {
        byte_thing: Some(1),
        struct_thing: Some(x.clone()),
        i32_thing: Some(5),
    };
    if let Some(v) = call!("testNest", client.test_nest(nest.clone())) {
        check!(e, "testNest", v, nest);
    }
    let map: AHashMap<i32, i32> = (0..5).map(|i| (i, i - 10)).collect();
    if let Some(v) = call!("testMap", client.test_map(map.clone())) {
        check!(e, "testMap", v, map);
    }
    let smap: AHashMap<FastStr, FastStr> =
        [("a", "2"), ("b", "blah"), ("some", "thing"), ("ü", "☃")]
            .into_iter()
            .map(|(k, v)| (FastStr::new(k), FastStr::new(v)))
            .collect();
    if let Some(v) = call!("testStringMap", client.test_string_map(smap.clone())) {
        check!(e, "testStringMap", v, smap);
    }
    let set: AHashSet<i32> = (-2..3).collect();
    if let Some(v) = call!("testSet", client.test_set(set.clone())) {
        check!(e, "testSet", v, set);
    }
    let list: Vec<i32> = vec![-2, -1, 0, 1, 2, i32::MAX];
    if let Some(v) = call!("testList", client.test_list(list.clone())) {
        check!(e, "testList", v, list);
    }
    for n in [
        Numberz::ONE,
        Numberz::TWO,
        Numberz::THREE,
        Numberz::FIVE,
        Numberz::EIGHT,
    ] {
        if let Some(v) = call!("testEnum", client.test_enum(n)) {
            check!(e, "testEnum", v, n);
        }
    }
    if let Some(v) = call!("testTypedef", client.test_typedef(UserId(309858235082523))) {
        check!(e, "testTypedef", v, UserId(309858235082523));
    }
    if let Some(v) = call!("testMapMap", client.test_map_map(1)) {
        check!(e, "testMapMap", v, map_map());
    }
    let insanity = Insanity {
        user_map: Some(BTreeMap::from([
            (Numberz::FIVE, UserId(5)),
            (Numberz::EIGHT, UserId(8)),
        ])),
        xtructs: Some(vec![xtruct("Goodbye4", 4, 4, 4), xtruct("Hello2", 2, 2, 2)]),
    };
    if let Some(v) = call!("testInsanity", client.test_insanity(insanity.clone())) {
        check!(e, "testInsanity", v, insanity_result(&insanity));
    }
    let arg3: AHashMap<i16, FastStr> = [(1, FastStr::new("one"))].into_iter().collect();
    if let Some(v) = call!(
        "testMulti",
        client.test_multi(1, 2, 3, arg3, Numberz::TWO, UserId(42))
    ) {
        check!(e, "testMulti", v, xtruct("Hello2", 1, 2, 3));
    }

    // Exceptions: declared, undeclared, none.
    match client.test_exception("Xception".into()).await {
        Err(ThriftTestTestExceptionError::Err1(x)) => {
            check!(
                e,
                "testException(Xception)",
                (x.error_code, x.message.as_deref().map(str::to_owned)),
                (Some(1001), Some("Xception".to_owned()))
            )
        }
        other => e.push(format!("testException(Xception): got {other:?}")),
    }
    match client.test_exception("TException".into()).await {
        Err(ThriftTestTestExceptionError::Status(_)) => {}
        other => e.push(format!("testException(TException): got {other:?}")),
    }
    if let Err(err) = client.test_exception("success".into()).await {
        e.push(format!("testException(success): {err}"));
    }
    match client
        .test_multi_exception("Xception".into(), "ignored".into())
        .await
    {
        Err(ThriftTestTestMultiExceptionError::Err1(x)) => {
            check!(e, "testMultiException(Xception)", x.error_code, Some(1001));
            check!(
                e,
                "testMultiException(Xception)",
                x.message.as_deref(),
                Some("This is an Xception")
            );
        }
        other => e.push(format!("testMultiException(Xception): got {other:?}")),
    }
    match client
        .test_multi_exception("Xception2".into(), "ignored".into())
        .await
    {
        Err(ThriftTestTestMultiExceptionError::Err2(x)) => {
            check!(e, "testMultiException(Xception2)", x.error_code, Some(2002));
            check!(
                e,
                "testMultiException(Xception2)",
                x.struct_thing.and_then(|s| s.string_thing),
                Some(FastStr::new("This is an Xception2"))
            );
        }
        other => e.push(format!("testMultiException(Xception2): got {other:?}")),
    }
    match client
        .test_multi_exception("no exception".into(), "test 3".into())
        .await
    {
        Ok(x) => check!(
            e,
            "testMultiException",
            x.string_thing.as_deref(),
            Some("test 3")
        ),
        Err(err) => e.push(format!("testMultiException(no exception): {err}")),
    }

    // One-way: returns at once although the server sleeps, and the
    // connection still serves calls.
    let started = std::time::Instant::now();
    call!("testOneway", client.test_oneway(1));
    if started.elapsed() > Duration::from_millis(900) {
        e.push(format!(
            "testOneway took {:?}: the call waited",
            started.elapsed()
        ));
    }
    call!("testVoid after testOneway", client.test_void());

    if let Some(second) = second {
        if let Some(v) = call!("secondtestString", second.secondtest_string("foo".into())) {
            check!(e, "secondtestString", v.as_str(), "testString(\"foo\")");
        }
    }
    e
}
