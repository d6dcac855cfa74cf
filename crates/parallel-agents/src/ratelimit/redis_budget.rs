//! A rate budget kept in Redis and shared by every process that names the same key:
//! call starts per minute and, optionally, tokens per minute.
//!
//! Redis holds one GCRA "theoretical arrival time" per key (`key` for starts,
//! `key:tokens` for tokens), advanced by an atomic Lua script that also reads Redis's own
//! clock (so hosts need no synchronised clocks). A process does not ask Redis once per
//! call: it *leases* a block (about 0.2 s of the budget, at least one start or one call's
//! tokens) and spends it locally in order. Starts leased but never used (a batch ended)
//! are lost, which only lowers the rate.
//!
//! Tokens are reserved before a call by the agent's estimate and settled after it with
//! the usage the server reported, as the agent's local budget does: a process keeps what
//! an estimate overshot for its next calls, up to one block, and gives the rest back to
//! Redis (so no process hoards budget, and one that stops loses at most a block); it
//! repays a shortfall from its next lease. The bucket holds one minute's tokens, like a provider's. Unlike starts, tokens
//! are not queued for in Redis: an estimate is far above most calls' use, so a queue of
//! estimates would run far ahead of what is really spent. A lease is granted only when
//! the bucket holds it now; otherwise the process's leaser waits until it would (polling
//! its own balance, which settled calls refill, every 50 ms) and asks again. Within a
//! process callers are served in order; across processes, whoever asks first.
//!
//! Redis lost mid-run: a caller needing a new lease retries with backoff (50 ms doubling
//! to 1 s) until Redis answers or its own deadline (the call's agent timeout) passes; then
//! the call fails with a message saying the budget was unreachable. No wait is unbounded.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{Client, Script};

/// What every script starts with: Redis's clock in µs (`now`), the arguments (`interval`
/// µs per unit, `n` units, `tolerance` µs), and the GCRA clock `tat` of `KEYS[1]`.
/// (`replicate_commands` lets Redis < 5 write after `TIME`; a no-op from 5 on.)
macro_rules! gcra_prelude {
    () => {
        r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
"
    };
}

/// Stores `new` as the clock of `KEYS[1]`; the key expires once it is in the past.
macro_rules! gcra_store {
    () => {
        "redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.floor((new - now) / 1000) + 1000)\n"
    };
}

/// Reserves `ARGV[2]` units `ARGV[1]` µs apart on the GCRA clock `KEYS[1]`; returns how
/// many µs from now (Redis's clock) the lease may be spent, given a tolerance of
/// `ARGV[3]` µs (the bucket's size in time).
const LEASE: &str = concat!(
    gcra_prelude!(),
    "if tat < now then tat = now end\nlocal new = tat + n * interval\n",
    gcra_store!(),
    "local wait = new - tolerance - now\nif wait < 0 then wait = 0 end\nreturn math.floor(wait)\n"
);

/// Takes `ARGV[2]` tokens `ARGV[1]` µs apart from the bucket `KEYS[1]` of `ARGV[3]` µs if
/// it holds them now: returns 0. Otherwise takes nothing and returns the µs until it
/// would hold them (if nobody else takes any).
const TAKE: &str = concat!(
    gcra_prelude!(),
    "if tat < now then tat = now end\nlocal new = tat + n * interval\n",
    "local wait = new - tolerance - now\nif wait > 0 then return math.floor(wait) + 1 end\n",
    gcra_store!(),
    "return 0\n"
);

/// Gives `ARGV[2]` tokens `ARGV[1]` µs apart back to the bucket `KEYS[1]` (never past
/// full): what settled calls did not use and their process keeps no room for.
const GIVE: &str = concat!(
    gcra_prelude!(),
    "if tat <= now then return 0 end\nlocal new = tat - n * interval\nif new < now then new = now end\n",
    gcra_store!(),
    "return 0\n"
);

/// How often a token leaser waiting for the bucket looks at its own balance.
const TOKEN_POLL: Duration = Duration::from_millis(50);
/// How much of the budget one lease takes, in time.
const LEASE_SPAN: Duration = Duration::from_millis(200);
/// The most starts one lease takes, whatever the rate.
const MAX_LEASE: u64 = 1000;
/// A token bucket's size, in time: one minute's tokens, as providers count them.
const TOKEN_WINDOW_US: f64 = 60e6;
/// How long creation, and each request mid-run, waits for Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Backoff between attempts to reach Redis mid-run.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What one script call is about: `KEYS[1]` and `ARGV[1..3]` of the scripts above.
#[derive(Clone, Copy)]
struct Units<'a> {
    key: &'a str,
    /// µs per unit on the key's clock.
    interval_us: f64,
    n: u64,
    /// The bucket's size in time, µs (unused by [`GIVE`]).
    tolerance_us: f64,
}

/// The connection to Redis and the lease script, shared by both budgets.
struct Link {
    client: Client,
    /// The URL without any password, for messages.
    shown: String,
    /// [`LEASE`], for starts.
    lease: Script,
    /// [`TAKE`], for tokens.
    take: Script,
    /// [`GIVE`], for tokens settled below their estimate.
    give: Script,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

/// Starts leased and not yet handed out.
#[derive(Debug, Default)]
struct StartLease {
    next: Option<Instant>,
    left: u64,
}

/// The starts-per-minute budget.
struct Starts {
    key: String,
    /// Between starts, in µs (at least 1).
    interval_us: u64,
    lease_len: u64,
    /// Held while leasing, so waiters are served in order and only one asks Redis.
    lease: tokio::sync::Mutex<StartLease>,
}

/// Tokens leased and not yet spent: may be negative after a call used more than its
/// estimate (the next lease repays it).
#[derive(Debug, Default)]
struct TokenLease {
    balance: i64,
}

/// The tokens-per-minute budget.
struct Tokens {
    key: String,
    per_minute: u64,
    interval_us: f64,
    /// Tokens one lease takes at least: 0.2 s of the budget.
    block: u64,
    /// Held while leasing, so only one caller asks Redis at a time.
    leasing: tokio::sync::Mutex<()>,
    /// Briefly locked; settling never waits for a lease.
    lease: Mutex<TokenLease>,
}

/// The Redis side of a shared [`RateLimiter`](super::RateLimiter).
pub(super) struct RedisBudget {
    /// Shared with the tasks that give tokens back.
    link: std::sync::Arc<Link>,
    starts: Starts,
    tokens: Option<Tokens>,
}

impl std::fmt::Debug for RedisBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBudget")
            .field("url", &self.link.shown)
            .field("key", &self.starts.key)
            .field("interval_us", &self.starts.interval_us)
            .field(
                "tokens_per_minute",
                &self.tokens.as_ref().map(|t| t.per_minute),
            )
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
    /// without its password. `tokens_per_minute` adds a token budget under `key:tokens`.
    pub(super) fn connect(
        url: &str,
        key: &str,
        per_second: f64,
        tokens_per_minute: Option<u64>,
    ) -> Result<Self, String> {
        let shown = redact(url);
        let client =
            Client::open(url).map_err(|e| format!("Redis URL {shown} is not usable: {e}"))?;
        let (lease, take, give) = (Script::new(LEASE), Script::new(TAKE), Script::new(GIVE));
        let mut conn = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| format!("cannot reach Redis at {shown}: {e}"))?;
        // Loads the scripts now, so a server refusing scripts fails here, not mid-run.
        for script in [&lease, &take, &give] {
            script
                .prepare_invoke()
                .load(&mut conn)
                .map_err(|e| format!("Redis at {shown} refused the rate script: {e}"))?;
        }
        let interval_us = ((1e6 / per_second).round() as u64).max(1);
        let lease_len = (LEASE_SPAN.as_micros() as u64 / interval_us).clamp(1, MAX_LEASE);
        let tokens = tokens_per_minute.map(|tpm| Tokens {
            key: format!("{key}:tokens"),
            per_minute: tpm,
            interval_us: TOKEN_WINDOW_US / tpm as f64,
            block: (tpm as f64 * LEASE_SPAN.as_secs_f64() / 60.0).ceil() as u64,
            leasing: tokio::sync::Mutex::new(()),
            lease: Mutex::new(TokenLease::default()),
        });
        Ok(Self {
            link: std::sync::Arc::new(Link {
                client,
                shown,
                lease,
                take,
                give,
                conn: tokio::sync::Mutex::new(None),
            }),
            starts: Starts {
                key: key.to_owned(),
                interval_us,
                lease_len,
                lease: tokio::sync::Mutex::new(StartLease::default()),
            },
            tokens,
        })
    }

    /// Whether it keeps a token budget.
    pub(super) fn counts_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// Waits for this process's next start slot, leasing more from Redis when needed;
    /// gives up if Redis cannot be reached before `deadline`.
    pub(super) async fn acquire(&self, deadline: Option<Instant>) -> Result<(), String> {
        let at = self.bounded(deadline, self.next_slot(deadline)).await?;
        tokio::time::sleep_until(at.into()).await;
        Ok(())
    }

    /// Reserves `estimate` tokens (at most a minute's) and waits until they may be spent;
    /// returns how many were reserved, for [`settle`](Self::settle). Without a token
    /// budget: 0 at once.
    pub(super) async fn take_tokens(
        &self,
        estimate: u64,
        deadline: Option<Instant>,
    ) -> Result<u64, String> {
        let Some(t) = &self.tokens else {
            return Ok(0);
        };
        let cost = estimate.min(t.per_minute);
        self.bounded(deadline, self.reserve_tokens(t, cost, deadline))
            .await?;
        Ok(cost)
    }

    /// Corrects a reservation of `reserved` tokens to the `used` ones the server
    /// reported (each counted for at most a minute's tokens).
    pub(super) fn settle(&self, reserved: u64, used: u64) {
        let Some(t) = &self.tokens else {
            return;
        };
        let cap = t.per_minute as i64;
        let used = used.min(t.per_minute) as i64;
        let reserved = reserved.min(t.per_minute) as i64;
        let keep = t.block as i64;
        let excess = {
            let mut l = crate::sync::lock(&t.lease);
            // Owed: at most a minute's tokens. Kept for the next calls: at most one block
            // (a process's last is lost when it stops), so no process saves budget for
            // later; the rest goes back to Redis for every process.
            l.balance = (l.balance + reserved - used).max(-cap);
            let excess = l.balance - keep;
            l.balance = l.balance.min(keep);
            excess
        };
        if excess > 0 {
            self.give_back(&t.key, t.interval_us, excess as u64);
        }
    }

    /// Returns `n` tokens to the bucket in Redis, in the background (the caller is
    /// delivering a result); if Redis cannot take them they are lost, which only lowers
    /// the rate.
    fn give_back(&self, key: &str, interval_us: f64, n: u64) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (link, key) = (std::sync::Arc::clone(&self.link), key.to_owned());
        rt.spawn(async move {
            let units = Units {
                key: &key,
                interval_us,
                n,
                tolerance_us: 0.0,
            };
            let _ = link.invoke(&link.give, units).await;
        });
    }

    /// The deadline covers queueing behind another caller's lease too: callers behind one
    /// stuck retrying do not wait one timeout each in turn.
    async fn bounded<T>(
        &self,
        deadline: Option<Instant>,
        work: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), work)
                .await
                .unwrap_or_else(|_| Err(self.unreachable("no lease in time"))),
            None => work.await,
        }
    }

    fn unreachable(&self, e: &str) -> String {
        format!(
            "the shared rate budget in Redis at {} (key {:?}) could not be reached before \
             the call's timeout: {e}",
            self.link.shown, self.starts.key
        )
    }

    /// This process's next start, leased from Redis if none is left.
    async fn next_slot(&self, deadline: Option<Instant>) -> Result<Instant, String> {
        let s = &self.starts;
        let mut lease = s.lease.lock().await;
        if lease.left == 0 {
            let interval_us = s.interval_us as f64;
            let units = Units {
                key: &s.key,
                interval_us,
                n: s.lease_len,
                // Tolerance of the whole lease: its first start comes at the key's clock.
                tolerance_us: interval_us * s.lease_len as f64,
            };
            let first = self.lease(units, deadline).await?;
            lease.next = Some(first);
            lease.left = s.lease_len;
        }
        let at = lease.next.unwrap_or_else(Instant::now);
        lease.next = Some(at + Duration::from_micros(s.interval_us));
        lease.left -= 1;
        Ok(at)
    }

    /// Takes `cost` tokens from this process's lease, leasing more first if it holds
    /// fewer, and waiting while the bucket in Redis does not hold them.
    async fn reserve_tokens(
        &self,
        t: &Tokens,
        cost: u64,
        deadline: Option<Instant>,
    ) -> Result<(), String> {
        let _leasing = t.leasing.lock().await;
        let mut ask_at = Instant::now();
        loop {
            let short = {
                let mut l = crate::sync::lock(&t.lease);
                if l.balance >= cost as i64 {
                    l.balance -= cost as i64;
                    return Ok(());
                }
                cost as i64 - l.balance
            };
            if Instant::now() >= ask_at {
                // At most a minute's tokens per lease; a debt of a minute takes two.
                let n = (short as u64).max(t.block).min(t.per_minute);
                let units = Units {
                    key: &t.key,
                    interval_us: t.interval_us,
                    n,
                    tolerance_us: TOKEN_WINDOW_US,
                };
                let (wait, _) = self
                    .retrying(deadline, || self.link.invoke(&self.link.take, units))
                    .await?;
                if wait == 0 {
                    crate::sync::lock(&t.lease).balance += n as i64;
                    continue;
                }
                ask_at = Instant::now() + Duration::from_micros(wait as u64);
            }
            // Settled calls may refill the balance before the bucket would.
            let wake = ask_at.min(Instant::now() + TOKEN_POLL);
            tokio::time::sleep_until(wake.into()).await;
        }
    }

    /// One lease of starts from a GCRA clock: when it may be spent.
    async fn lease(&self, units: Units<'_>, deadline: Option<Instant>) -> Result<Instant, String> {
        let (wait, asked) = self
            .retrying(deadline, || self.link.invoke(&self.link.lease, units))
            .await?;
        Ok(asked + Duration::from_micros(wait.max(0) as u64))
    }

    /// Runs one script call, retried with backoff while Redis cannot be reached, until
    /// `deadline`.
    async fn retrying<F, Fut>(
        &self,
        deadline: Option<Instant>,
        call: F,
    ) -> Result<(i64, Instant), String>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(i64, Instant), String>>,
    {
        let mut backoff = BACKOFF_MIN;
        loop {
            let r = match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), call())
                    .await
                    .unwrap_or_else(|_| Err("no answer in time".into())),
                None => call().await,
            };
            match r {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let wake = Instant::now() + backoff;
                    if deadline.is_some_and(|d| wake >= d) {
                        return Err(self.unreachable(&e));
                    }
                    tokio::time::sleep_until(wake.into()).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

impl Link {
    /// One call of `script` (which reads Redis's clock) on `key`: its reply, and when it
    /// was sent (the reply counts from then). A Redis that does not
    /// answer within [`CONNECT_TIMEOUT`] (hung, or a black-holed network) counts as
    /// unreachable.
    async fn invoke(&self, script: &Script, units: Units<'_>) -> Result<(i64, Instant), String> {
        // Bound first: the request (and the connection lock it holds) is dropped here.
        let r = tokio::time::timeout(CONNECT_TIMEOUT, self.invoke_unbounded(script, units)).await;
        match r {
            Ok(r) => r,
            Err(_) => {
                *self.conn.lock().await = None;
                Err(format!("no answer within {CONNECT_TIMEOUT:?}"))
            }
        }
    }

    async fn invoke_unbounded(
        &self,
        script: &Script,
        units: Units<'_>,
    ) -> Result<(i64, Instant), String> {
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
        let r: redis::RedisResult<i64> = script
            .key(units.key)
            .arg(units.interval_us)
            .arg(units.n)
            .arg(units.tolerance_us)
            .invoke_async(conn)
            .await;
        match r {
            Ok(v) => Ok((v, asked)),
            Err(e) => {
                // Reconnect next time.
                *guard = None;
                Err(e.to_string())
            }
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
