//! [`ExecutionMetrics`]: counts by outcome, latency statistics and throughput, and the
//! recorder that accumulates them with memory that does not grow with the batch.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::result::{AgentResult, Outcome};

pub mod cache;

/// What a batch (or an executor over its lifetime) did.
///
/// Latency figures are over the calls that ran to an outcome (ok, failed, timed out);
/// cancelled calls are counted but their cut-short durations are left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExecutionMetrics {
    /// Wall-clock time from the first call's start to the last call's end.
    #[serde(serialize_with = "ser_us")]
    pub total_duration: Duration,
    /// Calls that answered.
    pub successful_count: u64,
    /// Calls that failed (error or panic) after their retries.
    pub failed_count: u64,
    /// Calls whose last attempt timed out.
    pub timed_out_count: u64,
    /// Calls cancelled, or never started because of a cancel.
    pub cancelled_count: u64,
    /// All calls: the sum of the four counts above.
    pub total_count: u64,
    /// Attempts made, retries included.
    pub attempts: u64,
    /// Calls for which a straggler hedge was started.
    pub hedged_count: u64,
    /// Hedges that answered before the original call.
    pub hedge_wins: u64,
    /// Mean of the per-call durations.
    #[serde(serialize_with = "ser_us")]
    pub avg_duration: Duration,
    /// Shortest per-call duration.
    #[serde(serialize_with = "ser_us")]
    pub min_duration: Duration,
    /// Longest per-call duration.
    #[serde(serialize_with = "ser_us")]
    pub max_duration: Duration,
    /// Median per-call duration.
    #[serde(serialize_with = "ser_us")]
    pub p50_duration: Duration,
    /// 95th percentile per-call duration.
    #[serde(serialize_with = "ser_us")]
    pub p95_duration: Duration,
    /// 99th percentile per-call duration.
    #[serde(serialize_with = "ser_us")]
    pub p99_duration: Duration,
    /// Calls that ran to an outcome, per second of `total_duration`.
    pub throughput: f64,
    /// Prompt tokens reported by the answering calls (LLM agents).
    pub prompt_tokens: u64,
    /// Completion tokens reported by the answering calls.
    pub completion_tokens: u64,
}

fn ser_us<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(micros(*d))
}

/// Whole microseconds in `d`, saturating at `u64::MAX` (about 584,000 years): the unit
/// metrics count latency in.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl ExecutionMetrics {
    /// Metrics of a finished set of results that took `wall` in all.
    pub fn from_results(results: &[AgentResult], wall: Duration) -> Self {
        let mut r = MetricsRecorder::new();
        for x in results {
            r.record(x);
        }
        r.snapshot_with_wall(wall)
    }

    /// This as a JSON object; durations are in microseconds with a `_us` suffix.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            for k in [
                "total_duration",
                "avg_duration",
                "min_duration",
                "max_duration",
                "p50_duration",
                "p95_duration",
                "p99_duration",
            ] {
                if let Some(x) = o.remove(k) {
                    o.insert(format!("{k}_us"), x);
                }
            }
        }
        v.to_string()
    }
}

/// Samples kept exactly up to this many, then folded into a histogram (3 significant
/// digits), so a million-call stream does not hold a million durations.
const EXACT_SAMPLES: usize = 1 << 16;
const HIST_MAX_US: u64 = 3_600_000_000;

#[derive(Clone, Debug)]
enum Samples {
    Exact(Vec<u64>),
    Hist(Box<Histogram<u64>>),
}

impl Samples {
    fn record(&mut self, us: u64) {
        match self {
            Samples::Exact(v) if v.len() < EXACT_SAMPLES => v.push(us),
            Samples::Exact(v) => {
                let mut h = Box::new(new_hist());
                for x in v.iter() {
                    h.saturating_record(*x);
                }
                h.saturating_record(us);
                *self = Samples::Hist(h);
            }
            Samples::Hist(h) => h.saturating_record(us),
        }
    }

    fn percentile(&mut self, q: f64) -> u64 {
        match self {
            Samples::Exact(v) => {
                if v.is_empty() {
                    return 0;
                }
                v.sort_unstable();
                // Nearest rank: the smallest sample with at least q of them at or below it.
                let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
                v[rank - 1]
            }
            Samples::Hist(h) => h.value_at_quantile(q),
        }
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("static histogram bounds are valid")
}

/// Accumulates results into metrics.
#[derive(Clone, Debug)]
pub struct MetricsRecorder {
    samples: Samples,
    sum: Duration,
    min: Option<Duration>,
    max: Duration,
    counts: [u64; 4],
    attempts: u64,
    hedged: u64,
    hedge_wins: u64,
    tokens: (u64, u64),
    first_start: Option<Instant>,
    last_end: Option<Instant>,
}

impl Default for MetricsRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            samples: Samples::Exact(Vec::new()),
            sum: Duration::ZERO,
            min: None,
            max: Duration::ZERO,
            counts: [0; 4],
            attempts: 0,
            hedged: 0,
            hedge_wins: 0,
            tokens: (0, 0),
            first_start: None,
            last_end: None,
        }
    }

    /// Counts one result.
    pub fn record(&mut self, r: &AgentResult) {
        // Sums saturate: token counts come from agents (an LLM server's `usage`), and an
        // overflow must neither wrap nor panic on the call that reported it.
        let c = &mut self.counts[r.outcome as usize];
        *c = c.saturating_add(1);
        self.attempts = self.attempts.saturating_add(u64::from(r.attempts));
        self.hedged = self.hedged.saturating_add(u64::from(r.hedged));
        self.hedge_wins = self.hedge_wins.saturating_add(u64::from(r.hedge_won));
        if let Some(u) = r.usage {
            self.tokens.0 = self.tokens.0.saturating_add(u.prompt_tokens);
            self.tokens.1 = self.tokens.1.saturating_add(u.completion_tokens);
        }
        if r.outcome == Outcome::Cancelled {
            return;
        }
        let d = r.duration;
        self.sum = self.sum.saturating_add(d);
        self.min = Some(self.min.map_or(d, |m| m.min(d)));
        self.max = self.max.max(d);
        self.samples.record(micros(d));
    }

    /// Counts one result that ended now, having started `duration` ago (for wall time).
    pub fn record_timed(&mut self, r: &AgentResult, now: Instant) {
        let start = now.checked_sub(r.duration).unwrap_or(now);
        self.first_start = Some(self.first_start.map_or(start, |s| s.min(start)));
        self.last_end = Some(self.last_end.map_or(now, |e| e.max(now)));
        self.record(r);
    }

    /// Adds another recorder's counts (an executor merges each finished batch).
    pub fn merge(&mut self, other: &MetricsRecorder) {
        let mut h = match std::mem::replace(&mut self.samples, Samples::Exact(Vec::new())) {
            Samples::Hist(h) => h,
            Samples::Exact(v) => {
                let mut h = Box::new(new_hist());
                v.iter().for_each(|x| h.saturating_record(*x));
                h
            }
        };
        match &other.samples {
            Samples::Exact(v) => v.iter().for_each(|x| h.saturating_record(*x)),
            Samples::Hist(o) => {
                let _ = h.add(o.as_ref());
            }
        }
        self.samples = Samples::Hist(h);
        self.sum = self.sum.saturating_add(other.sum);
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = self.max.max(other.max);
        for (c, o) in self.counts.iter_mut().zip(other.counts) {
            *c = c.saturating_add(o);
        }
        self.attempts = self.attempts.saturating_add(other.attempts);
        self.hedged = self.hedged.saturating_add(other.hedged);
        self.hedge_wins = self.hedge_wins.saturating_add(other.hedge_wins);
        self.tokens.0 = self.tokens.0.saturating_add(other.tokens.0);
        self.tokens.1 = self.tokens.1.saturating_add(other.tokens.1);
        self.first_start = match (self.first_start, other.first_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_end = match (self.last_end, other.last_end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Metrics so far, with `total_duration` from the recorded start and end times.
    pub fn snapshot(&mut self) -> ExecutionMetrics {
        let wall = match (self.first_start, self.last_end) {
            (Some(s), Some(e)) => e.saturating_duration_since(s),
            _ => Duration::ZERO,
        };
        self.snapshot_with_wall(wall)
    }

    /// Metrics so far, with the given wall time.
    pub fn snapshot_with_wall(&mut self, wall: Duration) -> ExecutionMetrics {
        let ran = self.counts[..3]
            .iter()
            .fold(0u64, |a, c| a.saturating_add(*c));
        let min = self.min.unwrap_or_default();
        let max = self.max;
        // Histogram buckets report their upper edge; keep percentiles within [min, max].
        let mut pct = |q| Duration::from_micros(self.samples.percentile(q)).clamp(min, max);
        let (p50, p95, p99) = (pct(0.50), pct(0.95), pct(0.99));
        ExecutionMetrics {
            total_duration: wall,
            successful_count: self.counts[Outcome::Ok as usize],
            failed_count: self.counts[Outcome::Failed as usize],
            timed_out_count: self.counts[Outcome::TimedOut as usize],
            cancelled_count: self.counts[Outcome::Cancelled as usize],
            total_count: self.counts.iter().fold(0, |a, c| a.saturating_add(*c)),
            attempts: self.attempts,
            hedged_count: self.hedged,
            hedge_wins: self.hedge_wins,
            // Integer division (f64 loses whole nanoseconds past about 104 days), kept
            // in [min, max] even if the sum saturated.
            avg_duration: if ran == 0 {
                Duration::ZERO
            } else {
                mean(self.sum, ran).max(min).min(max)
            },
            min_duration: min,
            max_duration: max,
            p50_duration: p50,
            p95_duration: p95,
            p99_duration: p99,
            throughput: if wall.is_zero() {
                0.0
            } else {
                ran as f64 / wall.as_secs_f64()
            },
            prompt_tokens: self.tokens.0,
            completion_tokens: self.tokens.1,
        }
    }
}

/// `sum / n` rounded down, exactly (`n > 0`).
fn mean(sum: Duration, n: u64) -> Duration {
    match u32::try_from(n) {
        Ok(n) => sum / n,
        Err(_) => {
            Duration::from_nanos(u64::try_from(sum.as_nanos() / u128::from(n)).unwrap_or(u64::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(outcome: Outcome, ms: u64) -> AgentResult {
        let mut r = AgentResult::test_ok(0, "a");
        r.outcome = outcome;
        r.success = outcome == Outcome::Ok;
        r.duration = Duration::from_millis(ms);
        r
    }

    #[test]
    fn average_is_the_mean_and_percentiles_are_ordered() {
        let rs: Vec<_> = [98, 101, 102, 99, 103]
            .iter()
            .map(|ms| res(Outcome::Ok, *ms))
            .collect();
        let m = ExecutionMetrics::from_results(&rs, Duration::from_millis(105));
        assert_eq!(m.avg_duration, Duration::from_micros(100_600));
        assert_eq!(m.min_duration, Duration::from_millis(98));
        assert_eq!(m.max_duration, Duration::from_millis(103));
        assert_eq!(m.p50_duration, Duration::from_millis(101));
        assert!(m.min_duration <= m.avg_duration && m.avg_duration <= m.max_duration);
        assert!(m.p50_duration <= m.p95_duration && m.p95_duration <= m.p99_duration);
        assert!(m.p99_duration <= m.max_duration);
        assert!((m.throughput - 5.0 / 0.105).abs() < 1e-9);
    }

    #[test]
    fn counts_add_up_and_cancelled_durations_are_left_out() {
        let rs = vec![
            res(Outcome::Ok, 10),
            res(Outcome::Failed, 20),
            res(Outcome::TimedOut, 30),
            res(Outcome::Cancelled, 1),
        ];
        let m = ExecutionMetrics::from_results(&rs, Duration::from_secs(1));
        assert_eq!(
            (
                m.successful_count,
                m.failed_count,
                m.timed_out_count,
                m.cancelled_count
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(m.total_count, 4);
        assert_eq!(m.min_duration, Duration::from_millis(10));
        assert_eq!(m.avg_duration, Duration::from_millis(20));
        assert!((m.throughput - 3.0).abs() < 1e-9);
    }

    #[test]
    fn large_batches_switch_to_a_histogram_and_stay_consistent() {
        let mut rec = MetricsRecorder::new();
        for i in 0..(EXACT_SAMPLES as u64 * 2) {
            rec.record(&res(Outcome::Ok, 1 + i % 200));
        }
        assert!(matches!(rec.samples, Samples::Hist(_)));
        let m = rec.snapshot_with_wall(Duration::from_secs(1));
        assert!(m.min_duration <= m.p50_duration && m.p50_duration <= m.p95_duration);
        assert!(m.p95_duration <= m.p99_duration && m.p99_duration <= m.max_duration);
        let p50 = m.p50_duration.as_secs_f64() * 1e3;
        assert!((p50 - 100.0).abs() < 2.0, "p50 {p50}");
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = MetricsRecorder::new();
        let mut b = MetricsRecorder::new();
        a.record(&res(Outcome::Ok, 5));
        b.record(&res(Outcome::Failed, 15));
        a.merge(&b);
        let m = a.snapshot_with_wall(Duration::from_secs(1));
        assert_eq!(
            (m.total_count, m.successful_count, m.failed_count),
            (2, 1, 1)
        );
        assert_eq!(m.avg_duration, Duration::from_millis(10));
        assert!(m.to_json().contains("\"avg_duration_us\":10000"));
    }

    #[test]
    fn token_sums_saturate_instead_of_overflowing() {
        let mut r = res(Outcome::Ok, 1);
        r.usage = Some(crate::agent::TokenUsage {
            prompt_tokens: u64::MAX - 1,
            completion_tokens: u64::MAX,
        });
        let mut a = MetricsRecorder::new();
        a.record(&r);
        a.record(&r);
        let b = a.clone();
        a.merge(&b);
        let m = a.snapshot_with_wall(Duration::from_secs(1));
        assert_eq!((m.prompt_tokens, m.completion_tokens), (u64::MAX, u64::MAX));
        assert_eq!((m.successful_count, m.total_count), (4, 4));
    }
}
