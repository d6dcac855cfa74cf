//! The one global Tokio runtime: started lazily on first use, sized before that, stopped
//! only by an explicit [`shutdown`] (never from `atexit` or a destructor).

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use tokio::runtime::{Handle, Runtime};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};

/// Largest accepted worker count.
pub const MAX_WORKER_THREADS: usize = 1024;

enum State {
    Idle,
    /// The pid that started it is in [`LIVE`].
    Running {
        rt: Runtime,
    },
    ShutDown,
}

static STATE: Mutex<State> = Mutex::new(State::Idle);
static WORKERS: AtomicUsize = AtomicUsize::new(0);
/// `STATE` for lock-free checks: 0 idle, [`SHUT_DOWN`] after shutdown, else the pid that
/// started the runtime. Written only under the `STATE` lock.
static LIVE: AtomicU64 = AtomicU64::new(0);
const SHUT_DOWN: u64 = u64::MAX;

/// Whether this process started the running runtime (false in a forked child).
fn started_here(live: u64) -> bool {
    live == u64::from(std::process::id())
}
/// Parent of every batch's cancellation token: cancelling it cancels all work.
static ROOT: Lazy<CancellationToken> = Lazy::new(CancellationToken::new);
/// Every batch driver, so shutdown can wait for them to drain.
static TRACKER: Lazy<TaskTracker> = Lazy::new(TaskTracker::new);

thread_local! {
    /// Whether this thread is running inside the library's runtime: one of its workers or
    /// blocking threads, or a host thread inside [`block_on`].
    static IN_LIBRARY_RUNTIME: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread runs inside the library's runtime (see [`block_on`]), so
/// library futures may be polled right here instead of being spawned onto it.
pub fn in_library_runtime() -> bool {
    IN_LIBRARY_RUNTIME.with(|f| f.get())
}

fn lock() -> std::sync::MutexGuard<'static, State> {
    // A panic while holding this lock cannot leave `State` half-written; keep going.
    crate::sync::lock(&STATE)
}

/// Sets the number of worker threads. Only before the runtime starts; 0 means the default
/// (`PAGENT_WORKER_THREADS` if set, else one per core).
pub fn set_worker_threads(n: usize) -> Result<()> {
    if n > MAX_WORKER_THREADS {
        return Err(Error::InvalidArgument(format!(
            "worker threads {n} exceeds the limit {MAX_WORKER_THREADS}"
        )));
    }
    match &*lock() {
        State::Idle => {
            WORKERS.store(n, Ordering::SeqCst);
            Ok(())
        }
        State::Running { .. } => Err(Error::Runtime(
            "the runtime is already running; set the worker count before first use".into(),
        )),
        State::ShutDown => Err(Error::Shutdown),
    }
}

fn worker_count() -> Result<usize> {
    let n = WORKERS.load(Ordering::SeqCst);
    if n > 0 {
        return Ok(n);
    }
    match std::env::var("PAGENT_WORKER_THREADS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_WORKER_THREADS).contains(&n) => Ok(n),
            _ => Err(Error::Runtime(format!(
                "PAGENT_WORKER_THREADS={v:?} is not a number in [1, {MAX_WORKER_THREADS}]"
            ))),
        },
        Err(_) => Ok(std::thread::available_parallelism().map_or(2, |n| n.get())),
    }
}

/// A handle to the running runtime, starting it if needed.
pub fn handle() -> Result<Handle> {
    let mut st = lock();
    match &*st {
        State::Running { rt } => {
            if !started_here(LIVE.load(Ordering::Acquire)) {
                return Err(Error::Forked);
            }
            Ok(rt.handle().clone())
        }
        State::ShutDown => Err(Error::Shutdown),
        State::Idle => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(worker_count()?)
                .thread_name("pagent-worker")
                .on_thread_start(|| IN_LIBRARY_RUNTIME.with(|f| f.set(true)))
                .enable_all()
                .build()
                .map_err(|e| Error::Runtime(e.to_string()))?;
            let h = rt.handle().clone();
            LIVE.store(u64::from(std::process::id()), Ordering::Release);
            *st = State::Running { rt };
            Ok(h)
        }
    }
}

/// Whether the runtime has been started (and not shut down).
pub fn is_running() -> bool {
    matches!(&*lock(), State::Running { .. })
}

/// Fails if the calling thread belongs to a runtime (a library worker or blocking thread,
/// or a host's own Tokio runtime): blocking there would deadlock or panic.
pub fn ensure_may_block(what: &'static str) -> Result<()> {
    if Handle::try_current().is_ok() {
        return Err(Error::Reentrant(what));
    }
    Ok(())
}

/// The checks of a wait on work that already exists ([`wait`]): not from a runtime
/// thread, and not in a forked child (whose copy of the work has no threads behind it).
/// A shutdown is no reason to refuse: the work still comes back, cancelled.
fn ensure_may_wait(what: &'static str) -> Result<()> {
    ensure_may_block(what)?;
    match LIVE.load(Ordering::Acquire) {
        live if live != 0 && live != SHUT_DOWN && !started_here(live) => Err(Error::Forked),
        _ => Ok(()),
    }
}

/// Wakes the host thread that [`wait`] parked.
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Waits on the calling host thread for `fut` until `deadline` (`None`: as long as it
/// takes), without entering the runtime. For futures that only wait on the library's
/// channels and locks (a batch's results): they need no worker and no timer, so the wait
/// goes on working while and after the runtime shuts down — a host waiting on a batch
/// still gets every result — and costs a park and an unpark, not a trip through the
/// runtime. `Ok(None)` if the deadline came first; the future is then dropped, so it must
/// be cancel-safe. A future that uses Tokio timers or spawns must use [`block_on`].
pub fn wait<F: Future>(
    what: &'static str,
    fut: F,
    deadline: Option<Instant>,
) -> Result<Option<F::Output>> {
    ensure_may_wait(what)?;
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Ok(Some(v));
        }
        match deadline {
            None => std::thread::park(),
            Some(t) => match t.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => std::thread::park_timeout(left),
                _ => return Ok(None),
            },
        }
    }
}

/// [`wait`] with no deadline.
pub fn wait_forever<F: Future>(what: &'static str, fut: F) -> Result<F::Output> {
    // Without a deadline the wait ends only with the output.
    wait(what, fut, None)?.ok_or_else(|| Error::Runtime(format!("{what}: wait ended early")))
}

/// Runs `fut` to completion on the calling (host) thread, with the runtime's timers and
/// workers behind it. [`shutdown`] waits for it like for a batch (its deadline, then
/// cancellation), so the runtime never stops under a future still running here.
pub fn block_on<F: Future>(what: &'static str, fut: F) -> Result<F::Output> {
    ensure_may_block(what)?;
    // Taken before the handle: a shutdown either refuses us or waits for us.
    let _tracked = TRACKER.token();
    let handle = handle()?;
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_LIBRARY_RUNTIME.with(|f| f.set(self.0));
        }
    }
    let _reset = Reset(IN_LIBRARY_RUNTIME.with(|f| f.replace(true)));
    Ok(handle.block_on(fut))
}

/// A fresh cancellation token that [`shutdown`] cancels.
pub fn child_token() -> CancellationToken {
    ROOT.child_token()
}

/// Spawns a batch driver that [`shutdown`] waits for.
pub(crate) fn spawn_tracked<F>(handle: &Handle, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle.spawn(TRACKER.track_future(fut))
}

/// Stops the library: new calls fail with [`Error::Shutdown`] at once; running batches
/// get until `deadline` to finish, then everything still running is cancelled (its results
/// come back `Cancelled`) and the runtime stops. Call from a host thread, not a callback.
/// Calling it again, or before the runtime ever started, is harmless.
pub fn shutdown(deadline: Duration) -> Result<()> {
    ensure_may_block("shutdown")?;
    let rt = {
        let mut st = lock();
        let live = LIVE.swap(SHUT_DOWN, Ordering::AcqRel);
        match std::mem::replace(&mut *st, State::ShutDown) {
            State::Running { rt } if started_here(live) => rt,
            // A forked child must not touch the parent's threads: forget them.
            State::Running { rt, .. } => {
                std::mem::forget(rt);
                return Ok(());
            }
            State::Idle | State::ShutDown => return Ok(()),
        }
    };
    let start = Instant::now();
    TRACKER.close();
    rt.block_on(async {
        if tokio::time::timeout(deadline, TRACKER.wait())
            .await
            .is_err()
        {
            ROOT.cancel();
            // Cancelled batches report their remaining calls and end promptly.
            let _ = tokio::time::timeout(Duration::from_secs(5), TRACKER.wait()).await;
        }
    });
    ROOT.cancel();
    let left = deadline.saturating_sub(start.elapsed());
    rt.shutdown_timeout(left.max(Duration::from_millis(100)));
    Ok(())
}
