/*
 * C bench host for `cargo run --release -p bench` (the runner compiles and runs it).
 *
 * Measures, through the C ABI only:
 *   1. pure overhead: N zero-latency mock calls at concurrency C, through
 *      pagent_submit + pagent_batch_next (completion order) and through pagent_execute
 *      (one blocking call, results in question order);
 *   2. one consensus round of 5 zero-latency agents (pagent_run_consensus), ROUNDS times,
 *      reporting p50 / p99 / mean latency per round (default config: early stop on).
 *
 * Every result is checked (each question index exactly once, outcome OK, the answer
 * right for every 64th index, the batch metrics count N successes; every consensus
 * round a unanimous "Paris" but for calls early stop cancelled). Any wrong result prints a message to stderr and exits 1.
 *
 * Output: one `key=value ...` line per measurement on stdout, parsed by the runner.
 *
 * usage: c_overhead overhead N C REPS    (median of REPS runs of each API)
 *        c_overhead consensus ROUNDS
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "parallel_agents.h"

#define CONSENSUS_AGENTS 5

static void die(const char *what, pagent_status st) {
    fprintf(stderr, "c_overhead: %s failed: %s (%s)\n", what, pagent_status_str(st),
            pagent_last_error());
    exit(1);
}

static void wrong(const char *msg, size_t index) {
    fprintf(stderr, "c_overhead: wrong result: %s (index %zu)\n", msg, index);
    exit(1);
}

#define CHECK(call, what)                                                                  \
    do {                                                                                   \
        pagent_status st_ = (call);                                                        \
        if (st_ != PAGENT_OK) die(what, st_);                                              \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time (user + system, s) and context switches of the whole process, all threads. */
struct usage {
    double cpu_s;
    double switches;
};

static struct usage usage_now(void) {
    struct rusage ru;
    struct usage u = {0, 0};
    if (getrusage(RUSAGE_SELF, &ru) != 0) return u;
    u.cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
              (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    u.switches = (double)(ru.ru_nvcsw + ru.ru_nivcsw);
    return u;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *xs, size_t n) {
    qsort(xs, n, sizeof *xs, cmp_double);
    return xs[n / 2];
}

/* N questions "q0", "q1", ...: one buffer, one pointer array. */
static const char **make_questions(size_t n, char **storage) {
    enum { SLOT = 24 }; /* "q" + up to 20 digits + NUL */
    char *buf = malloc(n * SLOT);
    const char **qs = malloc(n * sizeof *qs);
    if (!buf || !qs) {
        fprintf(stderr, "c_overhead: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        char *q = buf + i * SLOT;
        snprintf(q, SLOT, "q%zu", i);
        qs[i] = q;
    }
    *storage = buf;
    return qs;
}

/* The mock's template answer for question index i (the agent id is the index). */
static int answer_is_right(const char *answer, size_t i) {
    char want[64];
    snprintf(want, sizeof want, "Agent %zu answer for 'q%zu'", i, i);
    return answer && strcmp(answer, want) == 0;
}

static void check_one(const pagent_result *r, size_t n, unsigned char *seen) {
    size_t i = pagent_result_question_index(r);
    if (i >= n) wrong("question index out of range", i);
    if (seen[i]) wrong("question index delivered twice", i);
    seen[i] = 1;
    if (pagent_result_outcome(r) != PAGENT_OUTCOME_OK) wrong("outcome is not OK", i);
    if (pagent_result_agent_id(r) != i) wrong("agent id is not the question index", i);
    if (i % 64 == 0 && !answer_is_right(pagent_result_answer(r), i)) wrong("wrong answer", i);
}

static void check_metrics(const pagent_metrics *m, size_t n) {
    if (m->successful_count != n || m->total_count != n)
        wrong("metrics do not count every call as a success", (size_t)m->successful_count);
}

/* pagent_submit, then pagent_batch_next(-1) until PAGENT_DONE. Returns seconds. */
static double run_stream(const pagent_executor *exec, const char **qs, size_t n,
                         unsigned char *seen) {
    memset(seen, 0, n);
    double t0 = now_s();
    pagent_batch *batch = NULL;
    CHECK(pagent_submit(exec, qs, n, &batch), "pagent_submit");
    size_t got = 0;
    for (;;) {
        pagent_result *r = NULL;
        pagent_status st = pagent_batch_next(batch, -1, &r);
        if (st == PAGENT_DONE) break;
        if (st != PAGENT_OK) die("pagent_batch_next", st);
        check_one(r, n, seen);
        pagent_result_free(r);
        got++;
    }
    double dt = now_s() - t0;
    if (got != n) wrong("stream returned the wrong number of results", got);
    pagent_metrics m;
    CHECK(pagent_batch_metrics(batch, &m), "pagent_batch_metrics");
    check_metrics(&m, n);
    pagent_batch_free(batch);
    return dt;
}

/* pagent_execute: one blocking call. Returns seconds (the free is not timed). */
static double run_execute(const pagent_executor *exec, const char **qs, size_t n,
                          unsigned char *seen) {
    memset(seen, 0, n);
    double t0 = now_s();
    pagent_results *rs = NULL;
    CHECK(pagent_execute(exec, qs, n, &rs), "pagent_execute");
    size_t len = pagent_results_len(rs);
    for (size_t k = 0; k < len; k++) {
        const pagent_result *r = NULL;
        CHECK(pagent_results_get(rs, k, &r), "pagent_results_get");
        check_one(r, n, seen);
    }
    double dt = now_s() - t0;
    if (len != n) wrong("execute returned the wrong number of results", len);
    pagent_metrics m;
    CHECK(pagent_results_metrics(rs, &m), "pagent_results_metrics");
    check_metrics(&m, n);
    pagent_results_free(rs);
    return dt;
}

static pagent_executor *make_executor(size_t concurrency, const pagent_mock_options *mo) {
    pagent_agent *agent = NULL;
    CHECK(pagent_agent_mock(mo, &agent), "pagent_agent_mock");
    pagent_config *cfg = pagent_config_new();
    if (!cfg) die("pagent_config_new", PAGENT_ERR_NULL);
    CHECK(pagent_config_set_max_concurrency(cfg, concurrency), "set_max_concurrency");
    /* Timeouts on, as a real host would have them (30 s, never reached here). */
    CHECK(pagent_config_set_agent_timeout_ms(cfg, 30000), "set_agent_timeout_ms");
    pagent_executor *exec = NULL;
    CHECK(pagent_executor_new(cfg, agent, &exec), "pagent_executor_new");
    pagent_config_free(cfg);
    pagent_agent_free(agent);
    return exec;
}

static void bench_overhead(size_t n, size_t c, size_t reps) {
    pagent_mock_options mo;
    pagent_mock_options_init(&mo);
    mo.latency_us = 0;
    pagent_executor *exec = make_executor(c, &mo);
    char *storage = NULL;
    const char **qs = make_questions(n, &storage);
    unsigned char *seen = malloc(n);
    double *t_next = malloc(reps * sizeof *t_next);
    double *t_exec = malloc(reps * sizeof *t_exec);
    double *c_next = malloc(reps * sizeof *c_next);
    double *c_exec = malloc(reps * sizeof *c_exec);
    double *s_next = malloc(reps * sizeof *s_next);
    double *s_exec = malloc(reps * sizeof *s_exec);
    if (!seen || !t_next || !t_exec || !c_next || !c_exec || !s_next || !s_exec) {
        fprintf(stderr, "c_overhead: out of memory\n");
        exit(1);
    }

    /* Warm-up: starts the runtime and the allocator's arenas. */
    run_stream(exec, qs, n < 10000 ? n : 10000, seen);

    for (size_t r = 0; r < reps; r++) {
        struct usage u0 = usage_now();
        t_next[r] = run_stream(exec, qs, n, seen);
        struct usage u1 = usage_now();
        t_exec[r] = run_execute(exec, qs, n, seen);
        struct usage u2 = usage_now();
        c_next[r] = u1.cpu_s - u0.cpu_s;
        c_exec[r] = u2.cpu_s - u1.cpu_s;
        s_next[r] = u1.switches - u0.switches;
        s_exec[r] = u2.switches - u1.switches;
    }
    double lo_next = t_next[0], lo_exec = t_exec[0];
    for (size_t r = 1; r < reps; r++) {
        if (t_next[r] < lo_next) lo_next = t_next[r];
        if (t_exec[r] < lo_exec) lo_exec = t_exec[r];
    }
    double m_next = median(t_next, reps), m_exec = median(t_exec, reps);
    double cpu_next = median(c_next, reps) * 1e9 / (double)n;
    double cpu_exec = median(c_exec, reps) * 1e9 / (double)n;
    double sw_next = median(s_next, reps) / (double)n;
    double sw_exec = median(s_exec, reps) / (double)n;
    printf("bench=overhead impl=c_abi_next n=%zu c=%zu reps=%zu measured_s=%.6f min_s=%.6f "
           "calls_per_s=%.0f cpu_ns_per_call=%.0f switches_per_call=%.4f\n",
           n, c, reps, m_next, lo_next, (double)n / m_next, cpu_next, sw_next);
    printf("bench=overhead impl=c_abi_execute n=%zu c=%zu reps=%zu measured_s=%.6f "
           "min_s=%.6f calls_per_s=%.0f cpu_ns_per_call=%.0f switches_per_call=%.4f\n",
           n, c, reps, m_exec, lo_exec, (double)n / m_exec, cpu_exec, sw_exec);
    fflush(stdout);

    free(t_next);
    free(t_exec);
    free(c_next);
    free(c_exec);
    free(s_next);
    free(s_exec);
    free(seen);
    free(qs);
    free(storage);
    pagent_executor_free(exec);
}

static void bench_consensus(size_t rounds) {
    const char *answers[] = {"Paris"};
    pagent_mock_options mo;
    pagent_mock_options_init(&mo);
    mo.latency_us = 0;
    mo.vote_answers = answers;
    mo.n_vote_answers = 1;
    pagent_executor *exec = make_executor(CONSENSUS_AGENTS, &mo);
    double *us = malloc(rounds * sizeof *us);
    if (!us) {
        fprintf(stderr, "c_overhead: out of memory\n");
        exit(1);
    }
    size_t warm = rounds / 10 + 1;
    for (size_t r = 0; r < warm + rounds; r++) {
        double t0 = now_s();
        pagent_consensus *c = NULL;
        CHECK(pagent_run_consensus(exec, "What is the capital of France?", CONSENSUS_AGENTS, &c),
              "pagent_run_consensus");
        double dt = now_s() - t0;
        /* Early stop (on by default) may cancel calls that can no longer change the
         * verdict; every other call must have answered "Paris". */
        const char *a = pagent_consensus_answer(c);
        size_t votes = pagent_consensus_votes(c);
        const pagent_results *rs = pagent_consensus_results(c);
        size_t cancelled = 0;
        for (size_t k = 0; k < pagent_results_len(rs); k++) {
            const pagent_result *x = NULL;
            CHECK(pagent_results_get(rs, k, &x), "pagent_results_get");
            cancelled += pagent_result_outcome(x) == PAGENT_OUTCOME_CANCELLED;
        }
        if (!a || strcmp(a, "Paris") != 0 || !pagent_consensus_reached(c) ||
            pagent_results_len(rs) != CONSENSUS_AGENTS || votes != pagent_consensus_counted(c) ||
            votes + cancelled != CONSENSUS_AGENTS ||
            (cancelled > 0 && !pagent_consensus_early_stopped(c)))
            wrong("consensus round is not a unanimous Paris (bar early-stop cancels)", r);
        pagent_consensus_free(c);
        if (r >= warm) us[r - warm] = dt * 1e6;
    }
    double sum = 0;
    for (size_t r = 0; r < rounds; r++) sum += us[r];
    qsort(us, rounds, sizeof *us, cmp_double);
    size_t i99 = (size_t)((double)rounds * 0.99);
    if (i99 >= rounds) i99 = rounds - 1;
    printf("bench=consensus impl=c_abi agents=%d rounds=%zu p50_us=%.2f p99_us=%.2f "
           "mean_us=%.2f\n",
           CONSENSUS_AGENTS, rounds, us[rounds / 2], us[i99], sum / (double)rounds);
    fflush(stdout);
    free(us);
    pagent_executor_free(exec);
}

static size_t arg(const char *s) {
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (!end || *end != '\0' || v == 0) {
        fprintf(stderr, "c_overhead: %s is not a positive number\n", s);
        exit(2);
    }
    return (size_t)v;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "overhead") == 0) {
        bench_overhead(arg(argv[2]), arg(argv[3]), arg(argv[4]));
    } else if (argc == 3 && strcmp(argv[1], "consensus") == 0) {
        bench_consensus(arg(argv[2]));
    } else {
        fprintf(stderr, "usage: %s overhead N C REPS | %s consensus ROUNDS\n", argv[0], argv[0]);
        return 2;
    }
    CHECK(pagent_shutdown(5000), "pagent_shutdown");
    return 0;
}
