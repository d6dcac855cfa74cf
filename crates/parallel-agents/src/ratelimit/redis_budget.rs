//! A start-rate budget kept in Redis and shared by every process that names the same key.
//!
//! Redis holds one GCRA "theoretical arrival time" per key, advanced by an atomic Lua
//! script that also reads Redis's own clock (so hosts need no synchronised clocks). A
//! process does not ask Redis once per start: it *leases* a block of consecutive start
//! slots (about 0.2 s of the budget, at least one) and spends them locally in order.
//! Slots leased but never used (a batch ended) are lost, which only lowers the rate.
//!
//! Redis lost mid-run: a caller needing a new lease retries with backoff (50 ms doubling
//! to 1 s) until Redis answers or its own deadline (the call's agent timeout) passes; then
//! the call fails with a message saying the budget was unreachable. No wait is unbounded.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{Client, Script};

/// Reserves `ARGV[2]` consecutive slots `ARGV[1]` µs apart; returns how many µs from now
/// (Redis's clock) the first one is. The key expires once its slots are all in the past.
/// (`replicate_commands` lets Redis < 5 write after `TIME`; a no-op from 5 on.)
const LEASE: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + n * interval
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.floor((new - now) / 1000) + 1000)
return tat - now
";

/// How much of the budget one lease takes, in time.
const LEASE_SPAN: Duration = Duration::from_millis(200);
/// The most slots one lease takes, whatever the rate.
const MAX_LEASE: u64 = 1000;
/// How long creation, and each request mid-run, waits for Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Backoff between attempts to reach Redis mid-run.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Slots leased and not yet handed out.
#[derive(Debug, Default)]
struct Lease {
    next: Option<Instant>,
    left: u64,
}

/// The Redis side of a shared [`RateLimiter`](super::RateLimiter).
pub(super) struct RedisBudget {
    client: Client,
    /// The URL without any password, for messages.
    shown: String,
    key: String,
    /// Between starts, in µs (at least 1).
    interval_us: u64,
    lease_len: u64,
    script: Script,
    /// Held while leasing, so waiters are served in order and only one asks Redis.
    lease: tokio::sync::Mutex<Lease>,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBudget")
            .field("url", &self.shown)
            .field("key", &self.key)
            .field("interval_us", &self.interval_us)
            .finish_non_exhaustive()
    }
}

/// `url` with any `user:password@` replaced by `***@`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

impl RedisBudget {
    /// Connects (checking Redis answers) and prepares the script. Errors name the URL
    /// without its password.
    pub(super) fn connect(url: &str, key: &str, per_second: f64) -> Result<Self, String> {
        let shown = redact(url);
        let client =
            Client::open(url).map_err(|e| format!("Redis URL {shown} is not usable: {e}"))?;
        let script = Script::new(LEASE);
        let mut conn = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| format!("cannot reach Redis at {shown}: {e}"))?;
        // Loads the script now, so a server refusing scripts fails here, not mid-run.
        script
            .prepare_invoke()
            .load(&mut conn)
            .map_err(|e| format!("Redis at {shown} refused the rate script: {e}"))?;
        let interval_us = ((1e6 / per_second).round() as u64).max(1);
        let lease_len = (LEASE_SPAN.as_micros() as u64 / interval_us).clamp(1, MAX_LEASE);
        Ok(Self {
            client,
            shown,
            key: key.to_owned(),
            interval_us,
            lease_len,
            script,
            lease: tokio::sync::Mutex::new(Lease::default()),
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// One lease from Redis: when its first slot is. A Redis that does not answer within
    /// [`CONNECT_TIMEOUT`] (hung, or a black-holed network) counts as unreachable.
    async fn lease_once(&self) -> Result<Instant, String> {
        // Bound first: the request (and the connection lock it holds) is dropped here.
        let r = tokio::time::timeout(CONNECT_TIMEOUT, self.lease_unbounded()).await;
        match r {
            Ok(r) => r,
            Err(_) => {
                *self.conn.lock().await = None;
                Err(format!("no answer within {CONNECT_TIMEOUT:?}"))
            }
        }
    }

    async fn lease_unbounded(&self) -> Result<Instant, String> {
        let mut guard = self.conn.lock().await;
        let conn = match &mut *guard {
            Some(c) => c,
            slot => slot.insert(
                self.client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        };
        let asked = Instant::now();
        let r: redis::RedisResult<i64> = self
            .script
            .key(&self.key)
            .arg(self.interval_us)
            .arg(self.lease_len)
            .invoke_async(conn)
            .await;
        match r {
            Ok(wait_us) => Ok(asked + Duration::from_micros(wait_us.max(0) as u64)),
            Err(e) => {
                // Reconnect next time.
                *guard = None;
                Err(e.to_string())
            }
        }
    }

    /// Waits for this process's next start slot, leasing more from Redis when needed;
    /// gives up if Redis cannot be reached before `deadline`.
    pub(super) async fn acquire(&self, deadline: Option<Instant>) -> Result<(), String> {
        // The deadline covers queueing behind another caller's lease too: callers behind
        // one stuck retrying do not wait one timeout each in turn.
        let slot = self.next_slot(deadline);
        let at = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), slot)
                .await
                .unwrap_or_else(|_| Err(self.unreachable("no lease in time")))?,
            None => slot.await?,
        };
        tokio::time::sleep_until(at.into()).await;
        Ok(())
    }

    fn unreachable(&self, e: &str) -> String {
        format!(
            "the shared rate budget in Redis at {} (key {:?}) could not be reached before \
             the call's timeout: {e}",
            self.shown, self.key
        )
    }

    /// This process's next slot, leased from Redis if none is left.
    async fn next_slot(&self, deadline: Option<Instant>) -> Result<Instant, String> {
        {
            let mut lease = self.lease.lock().await;
            if lease.left == 0 {
                let mut backoff = BACKOFF_MIN;
                let first = loop {
                    let attempt = self.lease_once();
                    let r = match deadline {
                        Some(d) => tokio::time::timeout_at(d.into(), attempt)
                            .await
                            .unwrap_or_else(|_| Err("no answer in time".into())),
                        None => attempt.await,
                    };
                    match r {
                        Ok(first) => break first,
                        Err(e) => {
                            let wake = Instant::now() + backoff;
                            if deadline.is_some_and(|d| wake >= d) {
                                return Err(self.unreachable(&e));
                            }
                            tokio::time::sleep_until(wake.into()).await;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                };
                lease.next = Some(first);
                lease.left = self.lease_len;
            }
            let at = lease.next.unwrap_or_else(Instant::now);
            lease.next = Some(at + Duration::from_micros(self.interval_us));
            lease.left -= 1;
            Ok(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://user:hunter2@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("redis://:p@ss@h/"), "redis://***@h/");
        assert_eq!(redact("redis://host:1"), "redis://host:1");
        assert_eq!(redact("host"), "host");
    }
}
