//! The end-to-end load generator: Weft (pooled and multiplexed), volo-thrift
//! (pooled and multiplexed), Kitex (pooled and multiplexed, against itself
//! and against Weft both ways) and a raw TCP echo, each server and client in
//! its own process on 127.0.0.1, closed-loop callers, interleaved rounds.
//!
//! ```text
//! cargo run --release -p weft-benches -- [--concurrency 1,16,128] [--payload 128,1024]
//!     [--rounds 3] [--warmup 1] [--duration 3] [--impls raw,weft-pooled,...]
//!     [--threads 2] [--out benches/results]
//! ```
//!
//! The same binary runs as the orchestrator (no subcommand), as a server
//! (`server IMPL`) and as a client (`client IMPL ADDR ...`); the
//! orchestrator drives them through their standard input and output.
//! Kitex's side is the Go program `tests/interop/go/cmd/kitex-bench`, which
//! speaks the same protocol; `scripts/interop.sh build` builds it (cached).

mod report;

use std::{
    future::Future,
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use faststr::FastStr;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use weft::core::{Address, ConnectionMode};
use weft_benches::{alloc, cpu, generated, raw, service, volo_side};

#[global_allocator]
static ALLOC: alloc::CountingAlloc = alloc::CountingAlloc;

/// What is measured: a framework and a connection mode, or the raw floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Impl {
    Raw,
    WeftPooled,
    WeftMux,
    VoloPooled,
    VoloMux,
    WeftMuxBare,
    WeftGrpc,
    Tonic,
    KitexPooled,
    KitexMux,
    KitexWeftPooled,
    KitexWeftMux,
    WeftKitexPooled,
    WeftKitexMux,
    WeftMuxObserve,
}

const ALL_IMPLS: [Impl; 15] = [
    Impl::Raw,
    Impl::WeftPooled,
    Impl::WeftMux,
    Impl::WeftMuxBare,
    Impl::VoloPooled,
    Impl::VoloMux,
    Impl::WeftGrpc,
    Impl::Tonic,
    Impl::KitexPooled,
    Impl::KitexMux,
    Impl::KitexWeftPooled,
    Impl::KitexWeftMux,
    Impl::WeftKitexPooled,
    Impl::WeftKitexMux,
    Impl::WeftMuxObserve,
];

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Raw => "raw",
            Impl::WeftPooled => "weft-pooled",
            Impl::WeftMux => "weft-mux",
            Impl::VoloPooled => "volo-pooled",
            Impl::VoloMux => "volo-mux",
            Impl::WeftMuxBare => "weft-mux-bare",
            Impl::WeftGrpc => "weft-grpc",
            Impl::Tonic => "tonic",
            Impl::KitexPooled => "kitex-pooled",
            Impl::KitexMux => "kitex-mux",
            Impl::KitexWeftPooled => "kitex-weft-pooled",
            Impl::KitexWeftMux => "kitex-weft-mux",
            Impl::WeftKitexPooled => "weft-kitex-pooled",
            Impl::WeftKitexMux => "weft-kitex-mux",
            Impl::WeftMuxObserve => "weft-mux-observe",
        }
    }

    /// Whether Kitex's program (`kitex-bench`) serves this one.
    fn kitex_server(self) -> bool {
        matches!(
            self,
            Impl::KitexPooled | Impl::KitexMux | Impl::WeftKitexPooled | Impl::WeftKitexMux
        )
    }

    /// Whether Kitex's program (`kitex-bench`) calls this one.
    fn kitex_client(self) -> bool {
        matches!(
            self,
            Impl::KitexPooled | Impl::KitexMux | Impl::KitexWeftPooled | Impl::KitexWeftMux
        )
    }

    fn parse(s: &str) -> anyhow::Result<Impl> {
        ALL_IMPLS
            .into_iter()
            .find(|i| i.name() == s)
            .with_context(|| format!("unknown implementation {s:?}"))
    }
}

/// Options of a whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Options {
    concurrency: Vec<usize>,
    payload: Vec<usize>,
    impls: Vec<Impl>,
    rounds: usize,
    warmup_s: f64,
    duration_s: f64,
    threads: usize,
    out: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: vec![1, 16, 128],
            payload: vec![128, 1024],
            impls: ALL_IMPLS.to_vec(),
            rounds: 3,
            warmup_s: 1.0,
            duration_s: 3.0,
            threads: 2,
            out: "benches/results".into(),
        }
    }
}

const USAGE: &str = "\
weft-benches: Weft vs volo-thrift vs a raw TCP echo, closed loop, interleaved rounds

USAGE: cargo run --release -p weft-benches -- [OPTIONS]

  --concurrency LIST   concurrent callers per cell      [1,16,128]
  --payload LIST       string payload bytes per cell    [128,1024]
  --impls LIST         raw,weft-pooled,weft-mux,weft-mux-bare,volo-pooled,volo-mux,
                       weft-mux-observe (weft-mux with metrics and tracing on),
                       weft-grpc,tonic, kitex-pooled,kitex-mux (Kitex <-> Kitex),
                       kitex-weft-pooled,kitex-weft-mux (Kitex client, Weft server),
                       weft-kitex-pooled,weft-kitex-mux (Weft client, Kitex server)  [all]
  --rounds N           rounds; medians are reported     [3]
  --warmup SECS        warm-up per run                  [1]
  --duration SECS      measured time per run            [3]
  --threads N          tokio worker threads per process [2]
  --out DIR            results.json, results.md, chart.svg [benches/results]

       cargo run --release -p weft-benches -- report benches/results/results.json
           rewrites the tables, chart and README section from saved results
";

fn list<T: std::str::FromStr>(s: &str) -> anyhow::Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.split(',')
        .map(|x| x.trim().parse::<T>().map_err(Into::into))
        .collect()
}

fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        match flag.as_str() {
            "--concurrency" => o.concurrency = list(value)?,
            "--payload" => o.payload = list(value)?,
            "--impls" => {
                o.impls = value
                    .split(',')
                    .map(Impl::parse)
                    .collect::<anyhow::Result<_>>()?
            }
            "--rounds" => o.rounds = value.parse()?,
            "--warmup" => o.warmup_s = value.parse()?,
            "--duration" => o.duration_s = value.parse()?,
            "--threads" => o.threads = value.parse()?,
            "--out" => o.out = value.clone(),
            other => bail!("unknown option {other}\n\n{USAGE}"),
        }
    }
    if o.rounds == 0 || o.concurrency.is_empty() || o.payload.is_empty() || o.impls.is_empty() {
        bail!("nothing to run\n\n{USAGE}");
    }
    Ok(o)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => {
            let imp = Impl::parse(args.get(1).context("server IMPL")?)?;
            let threads = args.get(2).map_or(Ok(2), |t| t.parse())?;
            runtime(threads)?.block_on(run_server(imp))
        }
        Some("client") => {
            let spec: ClientSpec = serde_json::from_str(args.get(1).context("client SPEC")?)?;
            runtime(spec.threads)?.block_on(run_client(spec))
        }
        // Redo the tables, chart and README from a results.json.
        Some("report") => {
            let path = args.get(1).context("report RESULTS.json")?;
            report::rewrite(&std::fs::read_to_string(path)?)
        }
        _ => orchestrate(parse_options(&args)?),
    }
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?)
}

// ===== the process's own costs =====

/// What a process has spent so far.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Spent {
    cpu_s: f64,
    allocs: u64,
    alloc_bytes: u64,
    calls: u64,
}

impl Spent {
    fn now(calls: u64) -> Spent {
        let (allocs, alloc_bytes) = alloc::counts();
        Spent {
            cpu_s: cpu::process_cpu_time().map_or(f64::NAN, |d| d.as_secs_f64()),
            allocs,
            alloc_bytes,
            calls,
        }
    }
}

/// Per-call costs between two snapshots.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct PerCall {
    cpu_us: f64,
    allocs: f64,
    alloc_bytes: f64,
}

fn per_call(a: &Spent, b: &Spent, calls: u64) -> PerCall {
    let n = calls.max(1) as f64;
    PerCall {
        cpu_us: (b.cpu_s - a.cpu_s) * 1e6 / n,
        allocs: (b.allocs - a.allocs) as f64 / n,
        alloc_bytes: (b.alloc_bytes - a.alloc_bytes) as f64 / n,
    }
}

// ===== server process =====

/// Serves `imp` on a loopback port. Prints `ADDR <addr>`, then answers
/// each `SNAP` line on standard input with a `Spent` JSON line; ends at
/// `EXIT` or end of input.
async fn run_server(imp: Impl) -> anyhow::Result<()> {
    let calls = Arc::new(AtomicU64::new(0));
    let listener = || std::net::TcpListener::bind("127.0.0.1:0");
    let tokio_listener = |l: std::net::TcpListener| -> anyhow::Result<tokio::net::TcpListener> {
        l.set_nonblocking(true)?;
        Ok(tokio::net::TcpListener::from_std(l)?)
    };
    let (addr, _keep): (SocketAddr, Box<dyn std::any::Any>) = match imp {
        Impl::Raw => {
            let l = tokio_listener(listener()?)?;
            (
                l.local_addr()?,
                Box::new(raw::spawn_server(l, calls.clone())),
            )
        }
        Impl::VoloPooled | Impl::VoloMux => {
            let l = tokio_listener(listener()?)?;
            let addr = l.local_addr()?;
            let handler = volo_side::VoloBenchServer::with_counter(calls.clone());
            let task = volo_side::spawn_server(l, handler, imp == Impl::VoloMux);
            (addr, Box::new(task))
        }
        Impl::WeftPooled
        | Impl::WeftMux
        | Impl::KitexWeftPooled
        | Impl::KitexWeftMux
        | Impl::WeftMuxObserve => {
            let handler = generated::Echo::with_counter(calls.clone());
            let observe = imp == Impl::WeftMuxObserve;
            let handle = generated::serve_with("127.0.0.1:0", handler, observe).await?;
            let Address::Tcp(addr) = handle.local_addr().clone() else {
                bail!("not a TCP address");
            };
            (addr, Box::new(handle))
        }
        Impl::WeftMuxBare => {
            let handler = service::BenchHandler::with_counter(calls.clone());
            let handle = service::serve("127.0.0.1:0", handler).await?;
            let Address::Tcp(addr) = handle.local_addr().clone() else {
                bail!("not a TCP address");
            };
            (addr, Box::new(handle))
        }
        Impl::WeftGrpc => {
            let (addr, handle) = weft_benches::grpc::weft_server(calls.clone()).await?;
            (addr, Box::new(handle))
        }
        Impl::Tonic => {
            let (addr, task) = weft_benches::grpc::tonic_server(calls.clone()).await?;
            (addr, Box::new(task))
        }
        Impl::KitexPooled | Impl::KitexMux | Impl::WeftKitexPooled | Impl::WeftKitexMux => {
            bail!("{} is served by kitex-bench", imp.name())
        }
    };
    println!("ADDR {addr}");
    std::io::stdout().flush()?;
    let calls2 = calls.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let stdin = std::io::stdin();
        let mut out = std::io::stdout();
        for line in stdin.lock().lines() {
            match line?.trim() {
                "SNAP" => {
                    let s = Spent::now(calls2.load(Ordering::Relaxed));
                    writeln!(out, "{}", serde_json::to_string(&s)?)?;
                    out.flush()?;
                }
                "EXIT" => break,
                _ => {}
            }
        }
        Ok(())
    })
    .await??;
    // Volo's and the raw servers' tasks end with the runtime.
    std::process::exit(0)
}

// ===== client process =====

/// What a client process runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClientSpec {
    imp: Impl,
    addr: SocketAddr,
    concurrency: usize,
    payload: usize,
    warmup_s: f64,
    duration_s: f64,
    threads: usize,
}

/// What a client process measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClientResult {
    calls: u64,
    errors: u64,
    elapsed_s: f64,
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    mean_us: f64,
    cost: PerCall,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// One caller's connection to the implementation under test. Each is its
/// own type, so each caller loop is a future of its own (one enum's future
/// over all of them trips rustc's higher-ranked `Send` check).
trait Caller: Send + 'static {
    fn call(&mut self, msg: &FastStr) -> impl Future<Output = anyhow::Result<()>> + Send;
}

impl Caller for raw::RawConn {
    async fn call(&mut self, _msg: &FastStr) -> anyhow::Result<()> {
        raw::RawConn::call(self).await?;
        Ok(())
    }
}

impl Caller for generated::Client {
    async fn call(&mut self, msg: &FastStr) -> anyhow::Result<()> {
        let got = self
            .with_context(&weft::core::Context::default())
            .echo(msg.clone())
            .await
            .map(|(v, _)| v)?;
        anyhow::ensure!(got.len() == msg.len(), "short echo");
        Ok(())
    }
}

impl Caller for service::BenchClient {
    async fn call(&mut self, msg: &FastStr) -> anyhow::Result<()> {
        let got = self.echo(msg.clone()).await?;
        anyhow::ensure!(got.len() == msg.len(), "short echo");
        Ok(())
    }
}

impl Caller for volo_side::VoloClient {
    async fn call(&mut self, msg: &FastStr) -> anyhow::Result<()> {
        let got = volo_side::echo(self, msg.clone()).await?;
        anyhow::ensure!(got.len() == msg.len(), "short echo");
        Ok(())
    }
}

impl Caller for weft_benches::grpc::WeftGrpcClient {
    async fn call(&mut self, msg: &FastStr) -> anyhow::Result<()> {
        anyhow::ensure!(self.echo(msg).await? == msg.len(), "short echo");
        Ok(())
    }
}

impl Caller for weft_benches::grpc::TonicClient {
    async fn call(&mut self, msg: &FastStr) -> anyhow::Result<()> {
        anyhow::ensure!(self.echo(msg).await? == msg.len(), "short echo");
        Ok(())
    }
}

/// One closed-loop caller: calls until `phase` says stop, recording the
/// latencies of the calls that started and ended while measuring.
fn spawn_caller<C: Caller>(
    mut caller: C,
    phase: Arc<AtomicU8>,
    msg: FastStr,
) -> tokio::task::JoinHandle<(Histogram<u64>, u64)> {
    tokio::spawn(async move {
        // 1 µs to 60 s at 3 significant digits: recording never allocates.
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        let mut errors = 0u64;
        loop {
            let p = phase.load(Ordering::Relaxed);
            if p == STOP {
                break;
            }
            let start = Instant::now();
            let ok = caller.call(&msg).await;
            let took = start.elapsed();
            if phase.load(Ordering::Relaxed) != MEASURE || p != MEASURE {
                continue;
            }
            match ok {
                Ok(()) => hist.saturating_record(took.as_micros().max(1) as u64),
                Err(e) => {
                    if errors == 0 {
                        eprintln!("call failed: {e:#}");
                    }
                    errors += 1;
                }
            }
        }
        (hist, errors)
    })
}

/// Runs `concurrency` closed-loop callers: warm-up, then prints `MEASURE`
/// and measures for the duration, then prints `DONE`, then the result as a
/// JSON line.
async fn run_client(spec: ClientSpec) -> anyhow::Result<()> {
    let msg: String = (0..spec.payload)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    // A static string: cloning it per call is free, as a caller reusing its
    // payload would have it.
    let msg = FastStr::from_static_str(Box::leak(msg.into_boxed_str()));
    let weft = |mode, observe| {
        generated::client_with(&Address::Tcp(spec.addr), mode, spec.concurrency, observe)
    };
    let shared_weft = match spec.imp {
        Impl::WeftPooled | Impl::WeftKitexPooled => Some(weft(ConnectionMode::Pooled, false)?),
        Impl::WeftMux | Impl::WeftKitexMux => Some(weft(ConnectionMode::Multiplexed, false)?),
        Impl::WeftMuxObserve => Some(weft(ConnectionMode::Multiplexed, true)?),
        _ => None,
    };
    let shared_bare = match spec.imp {
        Impl::WeftMuxBare => Some(service::BenchClient::new(
            &Address::Tcp(spec.addr),
            ConnectionMode::Multiplexed,
            spec.concurrency,
        )),
        _ => None,
    };
    let shared_volo = match spec.imp {
        Impl::VoloPooled => Some(volo_side::client(spec.addr, false)),
        Impl::VoloMux => Some(volo_side::client(spec.addr, true)),
        _ => None,
    };
    let shared_grpc = match spec.imp {
        Impl::WeftGrpc => Some(weft_benches::grpc::WeftGrpcClient::new(spec.addr)),
        _ => None,
    };
    let shared_tonic = match spec.imp {
        Impl::Tonic => Some(weft_benches::grpc::TonicClient::connect(spec.addr).await?),
        _ => None,
    };
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let mut tasks = Vec::with_capacity(spec.concurrency);
    for _ in 0..spec.concurrency {
        let (phase, msg) = (phase.clone(), msg.clone());
        tasks.push(match spec.imp {
            Impl::Raw => spawn_caller(
                raw::RawConn::connect(spec.addr, spec.payload).await?,
                phase,
                msg,
            ),
            Impl::WeftPooled
            | Impl::WeftMux
            | Impl::WeftKitexPooled
            | Impl::WeftKitexMux
            | Impl::WeftMuxObserve => {
                spawn_caller(shared_weft.clone().expect("weft client"), phase, msg)
            }
            Impl::WeftMuxBare => {
                spawn_caller(shared_bare.clone().expect("weft client"), phase, msg)
            }
            Impl::VoloPooled | Impl::VoloMux => {
                spawn_caller(shared_volo.clone().expect("volo client"), phase, msg)
            }
            Impl::WeftGrpc => spawn_caller(shared_grpc.clone().expect("grpc client"), phase, msg),
            Impl::Tonic => spawn_caller(shared_tonic.clone().expect("tonic client"), phase, msg),
            Impl::KitexPooled | Impl::KitexMux | Impl::KitexWeftPooled | Impl::KitexWeftMux => {
                bail!("{} is called by kitex-bench", spec.imp.name())
            }
        });
    }

    tokio::time::sleep(Duration::from_secs_f64(spec.warmup_s)).await;
    let before = Spent::now(0);
    let started = Instant::now();
    phase.store(MEASURE, Ordering::Relaxed);
    println!("MEASURE");
    std::io::stdout().flush()?;
    tokio::time::sleep(Duration::from_secs_f64(spec.duration_s)).await;
    phase.store(STOP, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let after = Spent::now(0);
    println!("DONE");
    std::io::stdout().flush()?;

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        hist.add(h)?;
        errors += e;
    }
    let calls = hist.len();
    let result = ClientResult {
        calls,
        errors,
        elapsed_s: elapsed,
        qps: calls as f64 / elapsed,
        p50_us: hist.value_at_quantile(0.50) as f64,
        p99_us: hist.value_at_quantile(0.99) as f64,
        p999_us: hist.value_at_quantile(0.999) as f64,
        max_us: hist.max() as f64,
        mean_us: hist.mean(),
        cost: per_call(&before, &after, calls),
    };
    println!("RESULT {}", serde_json::to_string(&result)?);
    std::io::stdout().flush()?;
    std::process::exit(0)
}

// ===== orchestrator =====

/// One measured run of one implementation in one cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    round: usize,
    imp: Impl,
    concurrency: usize,
    payload: usize,
    client: ClientResult,
    server: PerCall,
    server_calls: u64,
}

struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Proc {
    /// This program as `args`, or Kitex's `kitex-bench` at `kitex` when
    /// given.
    fn spawn(kitex: Option<&std::path::Path>, args: &[String]) -> anyhow::Result<Proc> {
        let exe = match kitex {
            Some(k) => k.to_path_buf(),
            None => std::env::current_exe()?,
        };
        let mut child = Command::new(&exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?);
        Ok(Proc {
            child,
            stdin,
            stdout,
        })
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut s = String::new();
        if self.stdout.read_line(&mut s)? == 0 {
            bail!("child exited early");
        }
        Ok(s.trim_end().to_owned())
    }

    fn send(&mut self, s: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{s}")?;
        self.stdin.flush()?;
        Ok(())
    }

    fn snap(&mut self) -> anyhow::Result<Spent> {
        self.send("SNAP")?;
        Ok(serde_json::from_str(&self.line()?)?)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.send("EXIT");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kitex's side of the load generator: `$WEFT_KITEX_BENCH`, else what
/// `scripts/interop.sh build` built (cached; it prints the directory last).
fn kitex_bench() -> anyhow::Result<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("WEFT_KITEX_BENCH") {
        return Ok(p.into());
    }
    eprintln!("building Kitex's side (scripts/interop.sh build; cached)");
    let out = Command::new("bash")
        .arg("scripts/interop.sh")
        .arg("build")
        .stderr(Stdio::inherit())
        .output()
        .context("running scripts/interop.sh build (run from the workspace root)")?;
    anyhow::ensure!(
        out.status.success(),
        "scripts/interop.sh build failed: Kitex's side needs Go (and the script's other tools)"
    );
    let stdout = String::from_utf8(out.stdout)?;
    let dir = stdout
        .lines()
        .last()
        .context("scripts/interop.sh build printed nothing")?;
    let bin = std::path::Path::new(dir.trim()).join("bin/kitex-bench");
    anyhow::ensure!(bin.exists(), "{} is missing", bin.display());
    Ok(bin)
}

fn run_one(
    o: &Options,
    kitex: Option<&std::path::Path>,
    round: usize,
    imp: Impl,
    concurrency: usize,
    payload: usize,
) -> anyhow::Result<Run> {
    let server_exe = if imp.kitex_server() {
        Some(kitex.context("no kitex-bench")?)
    } else {
        None
    };
    let client_exe = if imp.kitex_client() {
        Some(kitex.context("no kitex-bench")?)
    } else {
        None
    };
    let mut server = Proc::spawn(
        server_exe,
        &["server".into(), imp.name().into(), o.threads.to_string()],
    )?;
    let addr_line = server.line()?;
    let addr: SocketAddr = addr_line
        .strip_prefix("ADDR ")
        .with_context(|| format!("server said {addr_line:?}"))?
        .parse()?;
    let spec = ClientSpec {
        imp,
        addr,
        concurrency,
        payload,
        warmup_s: o.warmup_s,
        duration_s: o.duration_s,
        threads: o.threads,
    };
    let mut client = Proc::spawn(
        client_exe,
        &["client".into(), serde_json::to_string(&spec)?],
    )?;
    let expect = |p: &mut Proc, what: &str| -> anyhow::Result<()> {
        let l = p.line()?;
        anyhow::ensure!(l == what, "client said {l:?}, expected {what}");
        Ok(())
    };
    expect(&mut client, "MEASURE")?;
    let s0 = server.snap()?;
    expect(&mut client, "DONE")?;
    let s1 = server.snap()?;
    let result_line = client.line()?;
    let client_result: ClientResult = serde_json::from_str(
        result_line
            .strip_prefix("RESULT ")
            .with_context(|| format!("client said {result_line:?}"))?,
    )?;
    let server_calls = s1.calls - s0.calls;
    Ok(Run {
        round,
        imp,
        concurrency,
        payload,
        client: client_result,
        server: per_call(&s0, &s1, server_calls),
        server_calls,
    })
}

fn orchestrate(o: Options) -> anyhow::Result<()> {
    let cells: Vec<(usize, usize)> = o
        .concurrency
        .iter()
        .flat_map(|&c| o.payload.iter().map(move |&p| (c, p)))
        .collect();
    let total = o.rounds * cells.len() * o.impls.len();
    let per_run = o.warmup_s + o.duration_s + 0.3;
    eprintln!(
        "{total} runs, about {:.0} s; load before: {}",
        total as f64 * per_run,
        report::loadavg()
    );
    let kitex = if o.impls.iter().any(|i| i.kitex_server() || i.kitex_client()) {
        Some(kitex_bench()?)
    } else {
        None
    };
    let load_before = report::loadavg();
    let started = Instant::now();
    let mut runs = Vec::with_capacity(total);
    let mut done = 0;
    for round in 0..o.rounds {
        for (ci, &(concurrency, payload)) in cells.iter().enumerate() {
            // Rotate the order each cell and round so no implementation
            // always runs first (or right after the heaviest).
            let n = o.impls.len();
            for k in 0..n {
                let imp = o.impls[(k + round + ci) % n];
                let run = run_one(&o, kitex.as_deref(), round, imp, concurrency, payload)
                    .with_context(|| format!("{} c={concurrency} p={payload}", imp.name()))?;
                done += 1;
                eprintln!(
                    "[{done}/{total}] round {} c={concurrency:<3} p={payload:<5} {:<12} {:>9.0} qps  p50 {:>6.0} µs  p99 {:>6.0} µs{}",
                    round + 1,
                    imp.name(),
                    run.client.qps,
                    run.client.p50_us,
                    run.client.p99_us,
                    if run.client.errors > 0 {
                        format!("  {} errors", run.client.errors)
                    } else {
                        String::new()
                    }
                );
                runs.push(run);
            }
        }
    }
    let meta = report::Meta::collect(&o, load_before, started.elapsed().as_secs_f64());
    report::write(&o, &meta, &runs)
}
