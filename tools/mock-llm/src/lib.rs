//! `mock-llm`: a local OpenAI-compatible chat-completions server for tests, examples and
//! benchmarks, as a binary and as a library ([`Server::start`] runs one in-process). It
//! listens on 127.0.0.1 only; with `--port 0` (the default) the system picks a free port,
//! and the binary's first line on stdout is that port number.
//!
//! ```text
//! mock-llm [--port N] [--latency-ms N] [--jitter-ms N] [--require-key KEY]
//!          [--idle-close-ms N] [--max-seconds N] [--threads N] [--quiet]
//! ```
//!
//! Endpoints:
//! - `POST /v1/chat/completions` (also `/chat/completions`): answers like OpenAI, with
//!   `usage` (prompt tokens = prompt bytes / 4, completion tokens = answer bytes / 4,
//!   rounded up). The answer is `mock answer to: <last user message>`, or a vote.
//! - `GET /stats`: JSON with the request count, counts by status, token totals, the most
//!   requests in flight at once, and a log of every request's start time (µs since the
//!   server started), status and tag (`GET /stats?log=0`: without the log).
//! - `POST /reset`: zeroes the counters and the log. `GET /health`: `ok`.
//!
//! Behaviour per request comes from directives in the last user message or in an
//! `x-mock` header, e.g. `[status=429][retry-after=1] question`. Several play a hostile
//! or unusual server, for the agent's tests:
//!
//! | directive | effect |
//! | --- | --- |
//! | `[latency=MS]` | answer after MS ms instead of `--latency-ms` |
//! | `[status=CODE]` | answer with that HTTP status and an OpenAI-style error body |
//! | `[fail-first=N]` | only the first N requests with this prompt get `status` (429 if none) |
//! | `[retry-after=S]`, `[retry-after-ms=MS]` | those headers on an error answer |
//! | `[retry-after-date=S]` | `Retry-After` as an HTTP date S seconds ahead |
//! | `[llm-retry-after=S]` | `llm_provider-retry-after` (LiteLLM's forwarded hint) on an error answer |
//! | `[malformed]` | 200 with a truncated JSON body |
//! | `[huge=BYTES]` | 200 with a body of about BYTES, streamed without a length |
//! | `[slow-body=MS]` | the body trickles out in ten pieces over MS ms |
//! | `[vote=A:w\|B:w\|...]` | answer one candidate, drawn with these weights |
//! | `[echo-key]` | 401 (or `status`) whose message repeats the `Authorization` header |
//! | `[echo-headers]` | every request header goes into the reply: the answer, the error message (with `status`), a text error body (with `[text-error]`), a truncated body (with `[malformed]`), a redirect's `Location` and body (with `[redirect=CODE]`) |
//! | `[pad=N]` | N characters before the echoed headers (so they straddle a cut) |
//! | `[text-error]` | an error (`status`) with a plain-text body, not JSON |
//! | `[redirect=CODE]` | a 3xx with a `Location` on another port |
//! | `[usage=P,C]` | `usage` reports these raw JSON values (e.g. `18446744073709551615,null`) |
//! | `[tool-call]` | `content: null` with a tool call, `finish_reason: "tool_calls"` |
//! | `[cut]` | empty content with `finish_reason: "length"` |
//! | `[surrogate]` | the answer carries a lone surrogate escape (`\ud800`) |
//! | `[close-if-reused]` | on a connection that served a request before, close it without replying |
//! | `[echo-request]` | the answer is the JSON of the request body, with `headers` (the `x-` ones) and `has_authorization` |
//! | `[timing]` | the answer ends with ` [server_us=N]`, the time the server spent |
//! | `[tag=NAME]` | NAME goes into the request's entry in the `/stats` log |
//!
//! Answers are deterministic: a vote is drawn from a hash of the model and the prompt
//! (and, when the temperature is above 0, of how many times this model was asked this
//! prompt before), so five voters that are five models can disagree, and a rerun agrees.
//!
//! The server is hyper's own (HTTP/1.1 and HTTP/2) over hyper-util: both are already in
//! the library's dependency tree through reqwest, so the test server adds no framework.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

type Body = BoxBody<Bytes, Infallible>;

/// Settings (the command line's, for the binary).
#[derive(Clone, Debug, Default)]
pub struct Args {
    /// Port on 127.0.0.1; 0 lets the system pick one.
    pub port: u16,
    /// Base latency of each answer.
    pub latency: Duration,
    /// Each answer's latency is uniform in latency ± jitter.
    pub jitter: Duration,
    /// If set, requests must carry `Authorization: Bearer KEY`.
    pub require_key: Option<String>,
    /// If set, a connection idle this long (no request in flight) is closed, as uvicorn
    /// and LiteLLM's proxy do after 5 s.
    pub idle_close: Option<Duration>,
    /// The binary exits after this many seconds (a bound for tests that forget it).
    pub max_seconds: Option<u64>,
    /// Worker threads of the binary's runtime (0: one per core).
    pub threads: usize,
    /// No start-up line on stderr.
    pub quiet: bool,
}

/// The command line's usage line.
pub const USAGE: &str = "usage: mock-llm [--port N] [--latency-ms N] [--jitter-ms N] \
[--require-key KEY] [--idle-close-ms N] [--max-seconds N] [--threads N] [--quiet]";

/// Parses command-line arguments (without the program name). `Ok(None)` for `--help`.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args::default();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: {v:?} is not a whole number"))
        };
        match flag.as_str() {
            "--port" => {
                let v = value("--port")?;
                a.port = v
                    .parse()
                    .map_err(|_| format!("--port: {v:?} is not a port"))?;
            }
            "--latency-ms" => a.latency = Duration::from_millis(num(&flag, value(&flag)?)?),
            "--jitter-ms" => a.jitter = Duration::from_millis(num(&flag, value(&flag)?)?),
            "--require-key" => a.require_key = Some(value(&flag)?),
            "--idle-close-ms" => {
                a.idle_close = Some(Duration::from_millis(num(&flag, value(&flag)?)?))
            }
            "--max-seconds" => a.max_seconds = Some(num(&flag, value(&flag)?)?),
            "--threads" => a.threads = num(&flag, value(&flag)?)? as usize,
            "--quiet" => a.quiet = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Some(a))
}

/// One request in the `/stats` log.
struct LogEntry {
    t_us: u64,
    status: u16,
    tag: Option<String>,
}

/// Counters behind `/stats`.
#[derive(Default)]
struct Stats {
    by_status: HashMap<u16, u64>,
    log: Vec<LogEntry>,
    prompt_tokens: u64,
    completion_tokens: u64,
    max_in_flight: u64,
}

/// Entries kept in the log; later requests are still counted.
const MAX_LOG: usize = 2_000_000;
/// Largest request body accepted.
const MAX_REQUEST_BYTES: usize = 8 << 20;

struct State {
    args: Args,
    started: Instant,
    requests: AtomicU64,
    in_flight: AtomicU64,
    stats: Mutex<Stats>,
    /// How often each (model, prompt) was asked: for `fail-first` and sampled votes.
    seen: Mutex<HashMap<(String, String), u64>>,
}

impl State {
    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Listens on 127.0.0.1:`port` (0: the system picks), with room for a thousand clients
/// connecting at once.
pub fn bind(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(4096)
}

/// Serves on `listener` until the future is dropped (`args.port`, `threads` and
/// `max_seconds` are the binary's business).
pub async fn serve(listener: tokio::net::TcpListener, args: Args) -> std::io::Result<()> {
    let state = Arc::new(State {
        args,
        started: Instant::now(),
        requests: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        stats: Mutex::default(),
        seen: Mutex::default(),
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                eprintln!("mock-llm: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let conn = Arc::new(Conn::default());
            let c = Arc::clone(&conn);
            let idle_close = state.args.idle_close;
            let svc = hyper::service::service_fn(move |req| {
                let (state, conn) = (Arc::clone(&state), Arc::clone(&c));
                async move { route(state, conn, req).await.ok_or(Dropped) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let serving = builder.serve_connection(TokioIo::new(stream), svc);
            match idle_close {
                None => {
                    let _ = serving.await;
                }
                // Dropping the connection's future closes its socket.
                Some(idle) => {
                    tokio::select! {
                        _ = serving => {}
                        _ = conn.idle_for(idle) => {}
                    }
                }
            }
        });
    }
}

/// A connection: how many requests it took, how many are in flight, when the last ended.
struct Conn {
    requests: AtomicU64,
    in_flight: AtomicU64,
    last_done: Mutex<Instant>,
}

impl Default for Conn {
    fn default() -> Self {
        Conn {
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            last_done: Mutex::new(Instant::now()),
        }
    }
}

impl Conn {
    /// Resolves once the connection has had no request in flight for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let since = *self.last_done.lock().unwrap_or_else(|p| p.into_inner());
            let quiet = self.in_flight.load(Ordering::SeqCst) == 0;
            if quiet && since.elapsed() >= idle {
                return;
            }
            tokio::time::sleep(if quiet {
                idle - since.elapsed().min(idle)
            } else {
                idle
            })
            .await;
        }
    }
}

/// The service's error: hyper closes the connection without a reply.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

/// A server running in this process, on a thread and runtime of its own (two workers),
/// for tests. Stops when dropped.
pub struct Server {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts a server with `args` (its `port`, usually 0).
    pub fn start(args: Args) -> std::io::Result<Server> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mock-llm")
            .enable_all()
            .build()?;
        let listener = rt.block_on(async { bind(args.port) })?;
        let port = listener.local_addr()?.port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mock-llm".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        r = serve(listener, args) => if let Err(e) = r { eprintln!("mock-llm: {e}") },
                        _ = stopped => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Server {
            port,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its OpenAI-compatible base URL, `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request; `None` closes the connection without a reply.
async fn route(
    state: Arc<State>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Option<Response<Body>> {
    let before = conn.requests.fetch_add(1, Ordering::SeqCst);
    conn.in_flight.fetch_add(1, Ordering::SeqCst);
    let resp = respond(state, before > 0, req).await;
    *conn.last_done.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    conn.in_flight.fetch_sub(1, Ordering::SeqCst);
    resp
}

async fn respond(
    state: Arc<State>,
    reused: bool,
    req: Request<Incoming>,
) -> Option<Response<Body>> {
    let r = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
            return chat(state, reused, req).await
        }
        (&Method::GET, "/stats") => {
            // `?log=0`: the counters only (the log grows with every request).
            let with_log = req.uri().query() != Some("log=0");
            json_response(StatusCode::OK, stats_json(&state, with_log))
        }
        (&Method::POST, "/reset") => {
            *state.stats() = Stats::default();
            state.requests.store(0, Ordering::SeqCst);
            state.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
            json_response(StatusCode::OK, json!({"reset": true}))
        }
        (&Method::GET, "/health") => text_response(StatusCode::OK, "ok"),
        _ => error_response(
            StatusCode::NOT_FOUND,
            &format!("no route for {} {}", req.method(), req.uri().path()),
            "invalid_request_error",
        ),
    };
    Some(r)
}

fn stats_json(state: &State, with_log: bool) -> Value {
    let st = state.stats();
    let by_status: serde_json::Map<String, Value> = st
        .by_status
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let log: Vec<Value> = st
        .log
        .iter()
        .take(if with_log { usize::MAX } else { 0 })
        .map(|e| json!({"t_us": e.t_us, "status": e.status, "tag": e.tag}))
        .collect();
    json!({
        "requests": state.requests.load(Ordering::SeqCst),
        "in_flight": state.in_flight.load(Ordering::SeqCst),
        "max_in_flight": st.max_in_flight,
        "by_status": by_status,
        "prompt_tokens": st.prompt_tokens,
        "completion_tokens": st.completion_tokens,
        "uptime_us": state.started.elapsed().as_micros() as u64,
        "log": log,
    })
}

/// Directives of one request, from its prompt and `x-mock` header.
#[derive(Default, Debug)]
struct Directives {
    latency: Option<Duration>,
    status: Option<u16>,
    fail_first: Option<u64>,
    retry_after: Option<String>,
    retry_after_ms: Option<String>,
    retry_after_date: Option<u64>,
    llm_retry_after: Option<String>,
    malformed: bool,
    huge: Option<usize>,
    slow_body: Option<Duration>,
    vote: Option<Vec<(String, f64)>>,
    echo_key: bool,
    echo_headers: bool,
    pad: usize,
    text_error: bool,
    redirect: Option<u16>,
    usage: Option<String>,
    tool_call: bool,
    cut: bool,
    surrogate: bool,
    close_if_reused: bool,
    echo_request: bool,
    timing: bool,
    tag: Option<String>,
}

impl Directives {
    /// Reads every `[key]` / `[key=value]` in `text`; unknown keys are ignored.
    fn read(&mut self, text: &str) {
        let mut rest = text;
        while let Some(open) = rest.find('[') {
            let Some(len) = rest[open..].find(']') else {
                break;
            };
            let inner = &rest[open + 1..open + len];
            rest = &rest[open + len + 1..];
            let (key, value) = match inner.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (inner.trim(), ""),
            };
            let ms = || value.parse::<u64>().ok().map(Duration::from_millis);
            match key {
                "latency" => self.latency = ms(),
                "status" => self.status = value.parse().ok().filter(|s| (100..600).contains(s)),
                "fail-first" => self.fail_first = value.parse().ok(),
                "retry-after" => self.retry_after = Some(value.to_owned()),
                "retry-after-ms" => self.retry_after_ms = Some(value.to_owned()),
                "retry-after-date" => self.retry_after_date = value.parse().ok(),
                "llm-retry-after" => self.llm_retry_after = Some(value.to_owned()),
                "malformed" => self.malformed = true,
                "huge" => self.huge = value.parse().ok(),
                "slow-body" => self.slow_body = ms(),
                "vote" => self.vote = parse_vote(value),
                "echo-key" => self.echo_key = true,
                "echo-headers" => self.echo_headers = true,
                "pad" => self.pad = value.parse::<usize>().unwrap_or(0).min(1 << 20),
                "text-error" => self.text_error = true,
                "redirect" => self.redirect = value.parse().ok().filter(|c| (300..400).contains(c)),
                "usage" => self.usage = Some(value.to_owned()),
                "tool-call" => self.tool_call = true,
                "cut" => self.cut = true,
                "surrogate" => self.surrogate = true,
                "close-if-reused" => self.close_if_reused = true,
                "echo-request" => self.echo_request = true,
                "timing" => self.timing = true,
                "tag" => self.tag = Some(value.to_owned()),
                _ => {}
            }
        }
    }
}

/// `A:0.5|B:0.3|C` (a missing weight is 1).
fn parse_vote(spec: &str) -> Option<Vec<(String, f64)>> {
    let c: Vec<(String, f64)> = spec
        .split('|')
        .filter(|s| !s.trim().is_empty())
        .map(|s| match s.rsplit_once(':') {
            Some((a, w)) if w.trim().parse::<f64>().is_ok() => {
                (a.trim().to_owned(), w.trim().parse::<f64>().unwrap_or(1.0))
            }
            _ => (s.trim().to_owned(), 1.0),
        })
        .filter(|(_, w)| w.is_finite() && *w >= 0.0)
        .collect();
    (!c.is_empty() && c.iter().map(|(_, w)| w).sum::<f64>() > 0.0).then_some(c)
}

/// FNV-1a with a splitmix64 finish: stable across runs, platforms and Rust versions.
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn pick(candidates: &[(String, f64)], h: u64) -> &str {
    let total: f64 = candidates.iter().map(|(_, w)| w).sum();
    let mut u = (h >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (a, w) in candidates {
        if u < *w {
            return a;
        }
        u -= w;
    }
    &candidates[candidates.len() - 1].0
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a State);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn chat(state: Arc<State>, reused: bool, req: Request<Incoming>) -> Option<Response<Body>> {
    let t0 = Instant::now();
    let t_us = t0.duration_since(state.started).as_micros() as u64;
    state.requests.fetch_add(1, Ordering::SeqCst);
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(&state);
    {
        let mut st = state.stats();
        st.max_in_flight = st.max_in_flight.max(now);
    }
    let (status, tag, tokens, resp) = answer(&state, reused, req, t0).await;
    let mut st = state.stats();
    *st.by_status.entry(status).or_default() += 1;
    st.prompt_tokens += tokens.0;
    st.completion_tokens += tokens.1;
    if st.log.len() < MAX_LOG {
        st.log.push(LogEntry { t_us, status, tag });
    }
    resp
}

/// Every request header as `name: value; ...`, after `pad` filler characters.
fn echo_of(headers: &hyper::HeaderMap, pad: usize) -> String {
    let mut s = "x".repeat(pad);
    for (n, v) in headers {
        s.push_str(&format!("{n}: {}; ", String::from_utf8_lossy(v.as_bytes())));
    }
    s
}

/// Handles one chat completion: (status, tag, usage reported, response; `None` drops the
/// connection, status 0 in the log).
async fn answer(
    state: &State,
    reused: bool,
    req: Request<Incoming>,
    t0: Instant,
) -> (u16, Option<String>, (u64, u64), Option<Response<Body>>) {
    let (parts, body) = req.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let auth = header("authorization");
    let mut d = Directives::default();
    if let Some(h) = header("x-mock") {
        d.read(&h);
    }
    let bytes = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let r = error_response(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body: {e}"),
                "invalid_request_error",
            );
            return (400, d.tag, (0, 0), Some(r));
        }
    };
    let request: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("the request body is not JSON: {e}");
            let r = error_response(StatusCode::BAD_REQUEST, &msg, "invalid_request_error");
            return (400, d.tag, (0, 0), Some(r));
        }
    };
    let model = request["model"].as_str().unwrap_or("").to_owned();
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let Some(user) = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .map(str::to_owned)
    else {
        let r = error_response(
            StatusCode::BAD_REQUEST,
            "messages must include a user message with string content",
            "invalid_request_error",
        );
        return (400, d.tag, (0, 0), Some(r));
    };
    if model.is_empty() {
        let r = error_response(
            StatusCode::BAD_REQUEST,
            "you must provide a model parameter",
            "invalid_request_error",
        );
        return (400, d.tag, (0, 0), Some(r));
    }
    d.read(&user);
    let tag = d.tag.clone();
    if d.close_if_reused && reused {
        return (0, tag, (0, 0), None);
    }
    let echo = d.echo_headers.then(|| echo_of(&parts.headers, d.pad));

    let seen_before = {
        let mut seen = state.seen.lock().unwrap_or_else(|p| p.into_inner());
        let n = seen.entry((model.clone(), user.clone())).or_default();
        *n += 1;
        *n - 1
    };

    // Latency first, as a real server thinks before it answers or refuses.
    let mut latency = d.latency.unwrap_or(state.args.latency);
    if d.latency.is_none() && !state.args.jitter.is_zero() {
        let h = stable_hash(&[user.as_bytes(), &seen_before.to_le_bytes()]);
        let j =
            state.args.jitter.as_secs_f64() * ((h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0);
        latency = Duration::from_secs_f64((latency.as_secs_f64() + j).max(0.0));
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    if let Some(key) = &state.args.require_key {
        if auth.as_deref() != Some(&format!("Bearer {key}")) {
            let shown = auth.as_deref().map_or("none".to_owned(), mask);
            let msg = format!("Incorrect API key provided: {shown}.");
            return (
                401,
                tag,
                (0, 0),
                Some(error_response(
                    StatusCode::UNAUTHORIZED,
                    &msg,
                    "invalid_request_error",
                )),
            );
        }
    }
    if d.echo_key {
        let code = d.status.unwrap_or(401);
        let msg = format!(
            "mock: you sent Authorization: {}",
            auth.as_deref().unwrap_or("(none)")
        );
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::UNAUTHORIZED);
        return (
            code,
            tag,
            (0, 0),
            Some(error_response(status, &msg, "invalid_request_error")),
        );
    }
    if let Some(code) = d.redirect {
        let location = format!(
            "http://127.0.0.1:9/elsewhere?echo={}",
            percent_encode(echo.as_deref().unwrap_or(""))
        );
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
        let mut r = full(status, "text/plain", echo.clone().unwrap_or_default());
        if let Ok(v) = location.parse() {
            r.headers_mut().insert(hyper::header::LOCATION, v);
        }
        return (code, tag, (0, 0), Some(r));
    }
    if let Some(code) = d.status.or(d.fail_first.map(|_| 429)) {
        let fail = d.fail_first.map_or(true, |n| seen_before < n);
        if fail && code != 200 {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = match code {
                429 => "rate_limit_exceeded",
                500..=599 => "server_error",
                _ => "invalid_request_error",
            };
            let msg = match &echo {
                Some(e) => format!("mock: you sent {e}"),
                None => format!(
                    "mock: status {code} as asked (request {} of this prompt)",
                    seen_before + 1
                ),
            };
            let mut r = if d.text_error {
                full(status, "text/plain", format!("upstream error: {msg}"))
            } else {
                error_response(status, &msg, kind)
            };
            let h = r.headers_mut();
            if let Some(v) = d.retry_after.as_deref().and_then(|v| v.parse().ok()) {
                h.insert("retry-after", v);
            }
            if let Some(v) = d.retry_after_ms.as_deref().and_then(|v| v.parse().ok()) {
                h.insert("retry-after-ms", v);
            }
            if let Some(v) = d.llm_retry_after.as_deref().and_then(|v| v.parse().ok()) {
                h.insert("llm_provider-retry-after", v);
            }
            if let Some(s) = d.retry_after_date {
                let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(s));
                if let Ok(v) = at.parse() {
                    h.insert("retry-after", v);
                }
            }
            return (code, tag, (0, 0), Some(r));
        }
    }

    let temperature = request["temperature"].as_f64().unwrap_or(1.0);
    let mut text = if d.echo_request {
        let custom: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .filter(|(n, _)| n.as_str().starts_with("x-") && n.as_str() != "x-mock")
            .map(|(n, v)| (n.to_string(), json!(v.to_str().unwrap_or(""))))
            .collect();
        let mut echoed = request.clone();
        echoed["headers"] = json!(custom);
        echoed["has_authorization"] = json!(auth.is_some());
        echoed.to_string()
    } else if let Some(e) = &echo {
        format!("mock answer: {e}")
    } else if let Some(c) = &d.vote {
        // Temperature 0: a model always gives the same answer to the same prompt.
        let draw = if temperature > 0.0 { seen_before } else { 0 };
        let h = stable_hash(&[model.as_bytes(), user.as_bytes(), &draw.to_le_bytes()]);
        pick(c, h).to_owned()
    } else {
        format!("mock answer to: {user}")
    };
    let prompt_bytes: usize = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .map(str::len)
        .sum();
    if d.timing {
        text.push_str(&format!(" [server_us={}]", t0.elapsed().as_micros()));
    }
    let usage = (
        (prompt_bytes as u64).div_ceil(4),
        (text.len() as u64).div_ceil(4),
    );
    if d.malformed {
        let shown = if echo.is_some() {
            text.clone()
        } else {
            text.len().to_string()
        };
        let body = format!(
            "{{\"id\":\"chatcmpl-mock\",\"choices\":[{{\"message\":{{\"content\":\"{shown}"
        );
        return (
            200,
            tag,
            (0, 0),
            Some(full(StatusCode::OK, "application/json", body)),
        );
    }
    let n = state.requests.load(Ordering::Relaxed);
    let created = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut doc = json!({
        "id": format!("chatcmpl-mock-{n}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": usage.0,
            "completion_tokens": usage.1,
            "total_tokens": usage.0 + usage.1,
        },
    });
    if let Some(size) = d.huge {
        doc["padding"] = json!("x".repeat(size));
    }
    if let Some(u) = &d.usage {
        // Raw JSON values, so a test can send what no honest server would.
        let (p, c) = u.split_once(',').unwrap_or((u, "0"));
        let raw = format!("{{\"prompt_tokens\":{p},\"completion_tokens\":{c}}}");
        doc["usage"] = json!("__USAGE__");
        let body = doc.to_string().replace("\"__USAGE__\"", &raw);
        return (
            200,
            tag,
            usage,
            Some(full(StatusCode::OK, "application/json", body)),
        );
    }
    if d.tool_call {
        doc["choices"][0]["message"] = json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]});
        doc["choices"][0]["finish_reason"] = json!("tool_calls");
    }
    if d.cut {
        doc["choices"][0]["message"]["content"] = json!("");
        doc["choices"][0]["finish_reason"] = json!("length");
    }
    if d.surrogate {
        doc["choices"][0]["message"]["content"] = json!("__SURROGATE__");
        let body = doc
            .to_string()
            .replace("__SURROGATE__", "broken \\ud800 pair");
        return (
            200,
            tag,
            usage,
            Some(full(StatusCode::OK, "application/json", body)),
        );
    }
    let body = Bytes::from(doc.to_string());
    let resp = if d.huge.is_some() {
        // Streamed without a length, so a client must count as it reads.
        let chunks: Vec<Bytes> = (0..body.len())
            .step_by(64 << 10)
            .map(|i| body.slice(i..(i + (64 << 10)).min(body.len())))
            .collect();
        stream_response(chunks, Duration::ZERO)
    } else if let Some(total) = d.slow_body {
        let step = body.len().div_ceil(10).max(1);
        let chunks: Vec<Bytes> = (0..body.len())
            .step_by(step)
            .map(|i| body.slice(i..(i + step).min(body.len())))
            .collect();
        stream_response(chunks, total / 10)
    } else {
        full(StatusCode::OK, "application/json", body)
    };
    (200, tag, usage, Some(resp))
}

/// `text` percent-encoded for a URL query (unreserved characters kept).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `sk-abc...xyz` for messages (as OpenAI shows a wrong key).
fn mask(auth: &str) -> String {
    let key = auth.strip_prefix("Bearer ").unwrap_or(auth);
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "***".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}***{tail}")
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json_response(status: StatusCode, v: Value) -> Response<Body> {
    full(status, "application/json", v.to_string())
}

fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    full(status, "text/plain", text)
}

fn error_response(status: StatusCode, message: &str, kind: &str) -> Response<Body> {
    json_response(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
    )
}

/// A 200 JSON response whose body comes out in `chunks`, `gap` apart.
fn stream_response(chunks: Vec<Bytes>, gap: Duration) -> Response<Body> {
    let stream = futures_util::stream::unfold(
        (chunks.into_iter(), true),
        move |(mut it, first)| async move {
            let chunk = it.next()?;
            if !first && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            Some((Ok::<_, Infallible>(Frame::data(chunk)), (it, false)))
        },
    );
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives() {
        let mut d = Directives::default();
        d.read("[status=429][retry-after=1] [tag=a b][vote=Paris:0.7|Lyon:0.3][timing] q");
        assert_eq!(d.status, Some(429));
        assert_eq!(d.retry_after.as_deref(), Some("1"));
        assert_eq!(d.tag.as_deref(), Some("a b"));
        assert_eq!(d.vote.as_ref().map(Vec::len), Some(2));
        assert!(d.timing);
        assert!(parse_vote("").is_none());
        assert!(parse_vote("A:0|B:0").is_none());
    }

    #[test]
    fn votes_are_stable_and_weighted() {
        let c = parse_vote("A:0.8|B:0.2").unwrap();
        let n = (0..10_000u64)
            .filter(|i| pick(&c, stable_hash(&[b"m", &i.to_le_bytes()])) == "A")
            .count();
        assert!((7_600..8_400).contains(&n), "{n}");
        assert_eq!(stable_hash(&[b"x"]), stable_hash(&[b"x"]));
        assert_ne!(stable_hash(&[b"x", b"y"]), stable_hash(&[b"xy"]));
    }
}
