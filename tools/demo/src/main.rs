//! The demo behind `cargo run --release`: the seed's five examples (basic parallel run,
//! parallel vs sequential, consensus, agent pool, concurrency sweep) plus deduplication
//! and streaming, all against the built-in mock agent (100 ms ± 5 ms, fixed seed).
//!
//! Every figure is honest: averages are the mean of per-call durations, and every measured
//! total time is printed beside its ideal, `ceil(N / concurrency) × latency`, with
//! efficiency = ideal / measured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use parallel_agents::{
    normalize_answer, runtime, Agent, AgentPool, AgentResult, ConsensusResult, ExecutionMetrics,
    MockAgent, MockAnswers, MockOptions, Outcome, ParallelAgentExecutor, ParallelConfig,
};

/// Base latency of every mock call.
const LATENCY: Duration = Duration::from_millis(100);
/// Each call's latency is uniform in `LATENCY ± JITTER`.
const JITTER: Duration = Duration::from_millis(5);
/// Seed of the mock agents, so every run draws the same latencies and answers.
const SEED: u64 = 42;
/// Seed of the voting round in example 3. Any seed gives a majority most of the time;
/// this one also shows an early stop.
const VOTE_SEED: u64 = 24;
const WIDTH: usize = 80;

const QUESTIONS: [&str; 8] = [
    "What is the capital of France?",
    "What is 2 + 2?",
    "Who wrote Romeo and Juliet?",
    "What is the speed of light?",
    "What is the largest planet?",
    "Who painted the Mona Lisa?",
    "What is the boiling point of water?",
    "How many continents are there?",
];

fn main() -> anyhow::Result<()> {
    let outcome = runtime::block_on("demo", run_examples());
    runtime::shutdown(Duration::from_secs(1))?;
    outcome?
}

async fn run_examples() -> anyhow::Result<()> {
    let start = Instant::now();
    println!("parallel-agents demo");
    println!(
        "Mock agent: latency {} ± {}, seed {SEED}.",
        fmt_dur(LATENCY),
        fmt_dur(JITTER)
    );
    println!(
        "Ideal time = ceil(N / concurrency) × {}; efficiency = ideal / measured. With ± {} \
         jitter the slowest call of a round may take {}, so jitter alone can bring a round \
         down to about 0.95.",
        fmt_dur(LATENCY),
        fmt_dur(JITTER),
        fmt_dur(LATENCY + JITTER)
    );
    example_basic().await?;
    example_comparison().await?;
    example_consensus().await?;
    example_pool().await?;
    example_sweep().await?;
    example_dedup().await?;
    example_stream().await?;
    println!();
    println!("Demo finished in {}.", fmt_dur(start.elapsed()));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------------------

/// Example 1: four questions at concurrency 4.
async fn example_basic() -> anyhow::Result<()> {
    title("EXAMPLE 1: Basic parallel execution");
    let exec = executor(4, template_agent(JITTER, SEED)?)?;
    let questions = questions(4);
    println!("Questions to process:");
    for (i, q) in questions.iter().enumerate() {
        println!("  {}. {q}", i + 1);
    }

    let (results, wall) = timed(exec.execute_parallel(questions)).await;
    let results = results?;
    println!();
    println!("Results:");
    print_results(&results);
    println!();
    print_total("Total execution time", results.len(), 4, wall);
    let m = exec.lifetime_metrics();
    println!(
        "Per call: average {} (mean), min {}, max {}",
        fmt_dur(m.avg_duration),
        fmt_dur(m.min_duration),
        fmt_dur(m.max_duration)
    );
    Ok(())
}

/// Example 2: the same eight questions one at a time, then eight at once.
async fn example_comparison() -> anyhow::Result<()> {
    title("EXAMPLE 2: Parallel vs sequential");
    let n = QUESTIONS.len();
    let exec = executor(n, template_agent(JITTER, SEED)?)?;

    let (seq, seq_wall) = timed(exec.execute_sequential(questions(n))).await;
    let (par, par_wall) = timed(exec.execute_parallel(questions(n))).await;
    let (seq_ok, par_ok) = (count_ok(&seq?), count_ok(&par?));
    let seq_ideal = ideal_time(n, 1);
    let par_ideal = ideal_time(n, n);

    println!("The same {n} questions, one at a time and then all at once.");
    println!();
    rule('=');
    println!("PERFORMANCE COMPARISON ({n} questions; parallel at concurrency {n})");
    rule('=');
    println!();
    println!(
        "{:<16} {:>10}  {:>10}   {:>10}",
        "Execution times:", "measured", "ideal", "efficiency"
    );
    for (label, wall, ideal) in [
        ("Sequential", seq_wall, seq_ideal),
        ("Parallel", par_wall, par_ideal),
    ] {
        println!(
            "  {:<14} {:>10}  {:>10}   {:>10.2}",
            format!("{label}:"),
            fmt_dur(wall),
            fmt_dur(ideal),
            efficiency(ideal, wall)
        );
    }
    println!(
        "  {:<14} {:>9.2}x  {:>9.2}x",
        "Speedup:",
        seq_wall.as_secs_f64() / par_wall.as_secs_f64(),
        seq_ideal.as_secs_f64() / par_ideal.as_secs_f64()
    );
    println!();
    println!("Throughput:");
    println!(
        "  Sequential:  {:>7.2} req/s   (ideal {:.2} req/s; {seq_ok}/{n} ok)",
        per_sec(n, seq_wall),
        per_sec(n, seq_ideal)
    );
    println!(
        "  Parallel:    {:>7.2} req/s   (ideal {:.2} req/s; {par_ok}/{n} ok)",
        per_sec(n, par_wall),
        per_sec(n, par_ideal)
    );
    println!();
    let saved = seq_wall.saturating_sub(par_wall);
    println!(
        "Time saved: {} ({:.1}% of the sequential time)",
        fmt_dur(saved),
        100.0 * saved.as_secs_f64() / seq_wall.as_secs_f64()
    );
    rule('=');
    Ok(())
}

/// Example 3: two consensus rounds. The seed's template agents all answer differently, so
/// there is no consensus; agents that vote among weighted answers reach one.
async fn example_consensus() -> anyhow::Result<()> {
    title("EXAMPLE 3: Consensus voting");
    let question = QUESTIONS[0].to_string();

    println!("Round 1: 5 template agents (\"Agent <i> answer for '<question>'\").");
    let exec = executor(5, template_agent(JITTER, SEED)?)?;
    let c = exec.execute_with_consensus(question.clone(), 5).await?;
    print_consensus(
        &exec,
        &question,
        &c,
        "Every template agent gives a different answer, so no answer can get more than one vote.",
    );

    println!();
    println!(
        "Round 2: 7 voting agents; answers drawn from Paris 0.7 (written \"Paris\", \
              \"paris.\", \" PARIS \"), Lyon 0.2, Marseille 0.1; early stop on."
    );
    let agent = vote_agent(
        &[
            ("Paris", 0.4),
            ("paris.", 0.2),
            (" PARIS ", 0.1),
            ("Lyon", 0.2),
            ("Marseille", 0.1),
        ],
        JITTER,
        VOTE_SEED,
    )?;
    let config = ParallelConfig {
        max_concurrency: 7,
        consensus_early_stop: true,
        ..ParallelConfig::default()
    };
    let exec = ParallelAgentExecutor::new(config, agent)?;
    let c = exec.execute_with_consensus(question.clone(), 7).await?;
    print_consensus(
        &exec,
        &question,
        &c,
        "\"Paris\", \"paris.\" and \" PARIS \" are one vote after normalisation.",
    );
    Ok(())
}

/// Example 4: a pool of six agents answers eight questions; each member serves one call
/// at a time, so the last two wait for a free member.
async fn example_pool() -> anyhow::Result<()> {
    title("EXAMPLE 4: Agent pool");
    let size = 6;
    let agents = (0..size)
        .map(|i| template_agent(JITTER, SEED + i as u64))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = ParallelConfig {
        max_concurrency: 8,
        ..ParallelConfig::default()
    };
    let pool = AgentPool::new(agents, config)?;
    let qs = questions(8);
    let n = qs.len();
    println!("Agent pool size: {}", pool.size());
    println!(
        "Processing {n} questions (max_concurrency 8, but each member serves one call at a \
         time: at most {size} at once)..."
    );

    let (results, wall) = timed(pool.execute_batch(qs)).await;
    let results = results?;
    println!();
    println!("Results (member = the pool member that served the question):");
    for (i, r) in results.iter().enumerate() {
        println!("  {}. [member {}] {}", i + 1, r.agent_id, describe(r));
    }
    let mut per_member = BTreeMap::new();
    for r in &results {
        *per_member.entry(r.agent_id).or_insert(0) += 1;
    }
    let served: Vec<String> = per_member
        .iter()
        .map(|(m, k)| format!("#{m}: {k}"))
        .collect();
    println!("Calls per member: {}", served.join(", "));
    println!();
    print_total("Total execution time", n, size, wall);
    let m = pool.executor().lifetime_metrics();
    println!(
        "Average time per call: {} (mean of per-call durations, min {}, max {}; a call's \
         time includes waiting for a free member)",
        fmt_dur(m.avg_duration),
        fmt_dur(m.min_duration),
        fmt_dur(m.max_duration)
    );
    Ok(())
}

/// Example 5: 32 questions at concurrency 2, 4, 8 and 16.
async fn example_sweep() -> anyhow::Result<()> {
    title("EXAMPLE 5: Concurrency sweep");
    let n = 32;
    println!("Testing {n} questions with different concurrency levels");
    println!();
    println!(
        "{:<28} {:>9} {:>9} {:>6} {:>12} {:>12}",
        "Configuration", "Duration", "Ideal", "Eff.", "Throughput", "Ideal thr."
    );
    rule('-');
    for (label, concurrency) in [
        ("Low Concurrency (2)", 2),
        ("Medium Concurrency (4)", 4),
        ("High Concurrency (8)", 8),
        ("Very High Concurrency (16)", 16),
    ] {
        let exec = executor(concurrency, template_agent(JITTER, SEED)?)?;
        let (results, wall) = timed(exec.execute_parallel(questions(n))).await;
        let ok = count_ok(&results?);
        let ideal = ideal_time(n, concurrency);
        println!(
            "{label:<28} {:>9} {:>9} {:>6.2} {:>6.2} req/s {:>6.2} req/s{}",
            fmt_dur(wall),
            fmt_dur(ideal),
            efficiency(ideal, wall),
            per_sec(n, wall),
            per_sec(n, ideal),
            if ok == n {
                String::new()
            } else {
                format!("  ({ok}/{n} ok)")
            }
        );
    }
    rule('-');
    println!("Ideal = ceil({n} / concurrency) × {}.", fmt_dur(LATENCY));
    Ok(())
}

/// Example 6: answers that differ only in case, spacing or trailing punctuation collapse.
async fn example_dedup() -> anyhow::Result<()> {
    title("EXAMPLE 6: Deduplication");
    let agent = vote_agent(
        &[
            ("Paris", 0.4),
            ("paris.", 0.2),
            ("  PARIS ", 0.1),
            ("Lyon", 0.3),
        ],
        JITTER,
        SEED,
    )?;
    let exec = executor(8, agent)?;
    let qs: Vec<String> = [
        "What is the capital of France?",
        "Name the capital of France.",
        "Which city is the French capital?",
        "France's capital city?",
        "Where does the French government sit?",
        "Capital of France, please.",
        "What city is France's capital?",
        "In which city is the Élysée Palace?",
    ]
    .map(String::from)
    .to_vec();

    let results = exec.execute_parallel(qs).await?;
    println!("All {} answers:", results.len());
    for (i, r) in results.iter().enumerate() {
        println!("  {}. {:<40} -> {:?}", i + 1, r.question, answer_of(r));
    }
    let kept = exec.deduplicate_results(results);
    println!();
    println!(
        "After deduplicate_results ({} kept; compared after trim, case-fold, whitespace \
         collapse and trailing-punctuation strip):",
        kept.len()
    );
    for r in &kept {
        let a = answer_of(r);
        println!(
            "  question {}: {a:?} (normalised: {:?})",
            r.question_index + 1,
            normalize_answer(a)
        );
    }
    println!("With `deduplicate_results: true` in the config, execute_parallel does this itself.");
    Ok(())
}

/// Example 7: results stream out in completion order through a small buffer.
async fn example_stream() -> anyhow::Result<()> {
    title("EXAMPLE 7: Streaming (completion order)");
    let jitter = Duration::from_millis(30);
    let n = QUESTIONS.len();
    let buffer = 2;
    let exec = executor(n, template_agent(jitter, SEED)?)?;
    println!(
        "{n} questions at concurrency {n}, latency {} ± {}, stream buffer {buffer}:",
        fmt_dur(LATENCY),
        fmt_dur(jitter)
    );
    println!();

    let start = Instant::now();
    let mut batch = exec.stream(questions(n), buffer)?;
    let mut order = Vec::with_capacity(n);
    while let Some(r) = batch.next().await {
        println!(
            "  +{:>8}  question {}  {}",
            fmt_dur(start.elapsed()),
            r.question_index + 1,
            describe(&r)
        );
        order.push((r.question_index + 1).to_string());
    }
    let wall = start.elapsed();
    println!();
    println!("Completion order: {}", order.join(", "));
    let m = batch.metrics().context("a drained batch has its metrics")?;
    println!(
        "Total: {} — all {n} start at once, so the ideal is the slowest call's own time ({}); \
         efficiency {:.2}",
        fmt_dur(wall),
        fmt_dur(m.max_duration),
        efficiency(m.max_duration, wall)
    );
    println!(
        "Per call: average {} (mean), min {}, max {}",
        fmt_dur(m.avg_duration),
        fmt_dur(m.min_duration),
        fmt_dur(m.max_duration)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Set-up helpers
// ---------------------------------------------------------------------------------------

fn mock(opts: MockOptions) -> anyhow::Result<Arc<dyn Agent>> {
    Ok(Arc::new(MockAgent::new(opts)?))
}

/// The seed's mock: "Agent <id> answer for '<question>'".
fn template_agent(jitter: Duration, seed: u64) -> anyhow::Result<Arc<dyn Agent>> {
    mock(MockOptions {
        latency: LATENCY,
        jitter,
        seed,
        answers: MockAnswers::Template,
        ..MockOptions::default()
    })
}

/// A mock that answers one of the candidates, drawn by weight.
fn vote_agent(
    candidates: &[(&str, f64)],
    jitter: Duration,
    seed: u64,
) -> anyhow::Result<Arc<dyn Agent>> {
    mock(MockOptions {
        latency: LATENCY,
        jitter,
        seed,
        answers: MockAnswers::Vote(
            candidates
                .iter()
                .map(|(a, w)| ((*a).to_string(), *w))
                .collect(),
        ),
        ..MockOptions::default()
    })
}

fn executor(
    max_concurrency: usize,
    agent: Arc<dyn Agent>,
) -> anyhow::Result<ParallelAgentExecutor> {
    let config = ParallelConfig {
        max_concurrency,
        agent_timeout: Duration::from_secs(30),
        ..ParallelConfig::default()
    };
    Ok(ParallelAgentExecutor::new(config, agent)?)
}

/// The first `n` questions, cycling through [`QUESTIONS`] (numbered once they repeat).
fn questions(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let q = QUESTIONS[i % QUESTIONS.len()];
            if i < QUESTIONS.len() {
                q.to_string()
            } else {
                format!("{q} (#{})", i + 1)
            }
        })
        .collect()
}

/// Awaits `fut` and measures its wall-clock time.
async fn timed<T>(fut: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = fut.await;
    (out, start.elapsed())
}

// ---------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------

/// `ceil(n / concurrency) × LATENCY`: the time `n` calls take with no overhead at all.
fn ideal_time(n: usize, concurrency: usize) -> Duration {
    let rounds = u32::try_from(n.div_ceil(concurrency)).unwrap_or(u32::MAX);
    LATENCY * rounds
}

/// Ideal / measured: 1.0 means no overhead.
fn efficiency(ideal: Duration, measured: Duration) -> f64 {
    if measured.is_zero() {
        return 0.0;
    }
    ideal.as_secs_f64() / measured.as_secs_f64()
}

fn per_sec(n: usize, d: Duration) -> f64 {
    if d.is_zero() {
        return 0.0;
    }
    n as f64 / d.as_secs_f64()
}

fn count_ok(results: &[AgentResult]) -> usize {
    results.iter().filter(|r| r.outcome == Outcome::Ok).count()
}

// ---------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------

/// "850µs", "102.3ms", "1.62s".
fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2}s")
    } else if s >= 1e-3 {
        format!("{:.1}ms", s * 1e3)
    } else {
        format!("{:.0}µs", s * 1e6)
    }
}

fn rule(c: char) {
    println!("{}", c.to_string().repeat(WIDTH));
}

fn title(text: &str) {
    println!();
    rule('=');
    println!("{text}");
    rule('=');
}

fn answer_of(r: &AgentResult) -> &str {
    r.answer.as_deref().unwrap_or("")
}

/// One result: its answer and time, or how it ended.
fn describe(r: &AgentResult) -> String {
    match (&r.outcome, &r.answer) {
        (Outcome::Ok, Some(a)) => format!("{a} (took {})", fmt_dur(r.duration)),
        (outcome, _) => format!(
            "[{}] {} (after {})",
            outcome.as_str(),
            r.error.as_deref().unwrap_or("no answer"),
            fmt_dur(r.duration)
        ),
    }
}

fn print_results(results: &[AgentResult]) {
    for (i, r) in results.iter().enumerate() {
        println!("  {}. {}", i + 1, describe(r));
    }
}

/// "Total execution time: 103.1ms (ideal 100.0ms = ceil(4/4) × 100.0ms; efficiency 0.97)".
fn print_total(label: &str, n: usize, concurrency: usize, wall: Duration) {
    let ideal = ideal_time(n, concurrency);
    println!(
        "{label}: {} (ideal {} = ceil({n}/{concurrency}) × {}; efficiency {:.2})",
        fmt_dur(wall),
        fmt_dur(ideal),
        fmt_dur(LATENCY),
        efficiency(ideal, wall)
    );
    println!(
        "Throughput: {:.2} req/s (ideal {:.2} req/s)",
        per_sec(n, wall),
        per_sec(n, ideal)
    );
}

fn print_consensus(exec: &ParallelAgentExecutor, question: &str, c: &ConsensusResult, note: &str) {
    let threshold = exec.config().consensus_threshold;
    println!();
    rule('=');
    println!("AGGREGATED RESULTS WITH CONSENSUS");
    rule('=');
    println!();
    println!("Consensus:");
    println!("  Answer:     {}", c.answer.as_deref().unwrap_or("(none)"));
    println!(
        "  Confidence: {:.1}% ({} of {} counted votes; threshold {:.0}%)",
        100.0 * c.confidence,
        c.votes,
        c.counted,
        100.0 * threshold
    );
    println!(
        "  Consensus:  {}",
        if c.reached { "REACHED" } else { "NOT reached" }
    );
    println!("  Tally (votes per normalised answer):");
    for (answer, votes) in &c.tally {
        println!("    {votes} × {answer:?}");
    }
    let cancelled = c
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Cancelled)
        .count();
    let early = match (c.early_stopped, cancelled) {
        (false, _) => "no (every call ran to the end)".to_string(),
        (true, 0) => "yes, but the outstanding calls had already finished".to_string(),
        (true, 1) => {
            "yes — once the verdict could no longer change, the remaining call was cancelled"
                .to_string()
        }
        (true, k) => format!(
            "yes — once the verdict could no longer change, {k} outstanding calls were \
             cancelled"
        ),
    };
    println!("  Early stop: {early}");
    println!("  Note:       {note}");
    println!();
    println!("Individual results:");
    for r in &c.results {
        println!("  Agent {}: {}", r.agent_id, describe(r));
    }
    // The round's metrics were stored in the executor's cache under the question.
    let m = exec
        .get_metrics(question)
        .unwrap_or_else(|| c.metrics.clone());
    print_metrics(
        &m,
        ideal_time(c.results.len(), exec.config().max_concurrency),
    );
}

fn print_metrics(m: &ExecutionMetrics, ideal: Duration) {
    println!();
    rule('-');
    println!("EXECUTION METRICS (read back with get_metrics)");
    rule('-');
    println!();
    println!("Results:");
    println!("  Successful: {}", m.successful_count);
    println!("  Failed:     {}", m.failed_count);
    println!("  Timed out:  {}", m.timed_out_count);
    println!("  Cancelled:  {}", m.cancelled_count);
    println!("  Total:      {}", m.total_count);
    println!();
    println!("Timing (per call, over the calls that ran; cancelled calls left out):");
    println!(
        "  Total:      {} (first start to last end; ideal {}, efficiency {:.2})",
        fmt_dur(m.total_duration),
        fmt_dur(ideal),
        efficiency(ideal, m.total_duration)
    );
    println!("  Average:    {} (mean)", fmt_dur(m.avg_duration));
    println!("  Min:        {}", fmt_dur(m.min_duration));
    println!("  Max:        {}", fmt_dur(m.max_duration));
    println!(
        "  p50 / p95 / p99: {} / {} / {}",
        fmt_dur(m.p50_duration),
        fmt_dur(m.p95_duration),
        fmt_dur(m.p99_duration)
    );
    println!();
    let ran = m.total_count - m.cancelled_count;
    println!("Performance:");
    println!(
        "  Throughput: {:.2} req/s (ideal {:.2} req/s for {ran} calls in {})",
        m.throughput,
        per_sec(ran as usize, ideal),
        fmt_dur(ideal)
    );
    rule('=');
}
