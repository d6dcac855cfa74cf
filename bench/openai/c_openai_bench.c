/*
 * c_openai_bench.c: a C host making N chat-completion calls at concurrency C through
 * pagent_agent_openai against mock-llm (bench/openai/run.sh builds and runs it).
 *
 *   c_openai_bench BASE_URL [N=10000] [C=1000] [LATENCY_MS=100] [REPS=3]
 *
 * Every question carries the [timing] directive, so each answer ends with the time the
 * server spent on it (server_us=...); client overhead per call is the call's duration as
 * the library measured it minus that. A warm-up batch of C calls opens the connections
 * first (every client in the comparison gets one). Prints a human line and one
 * `key=value` line per repetition, and checks every answer: a lost, duplicated or failed
 * call exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "parallel_agents.h"

#define CHECK(call)                                                                        \
    do {                                                                                   \
        pagent_status st_ = (call);                                                        \
        if (st_ != PAGENT_OK) {                                                            \
            fprintf(stderr, "%s: %s: %s\n", #call, pagent_status_str(st_),                 \
                    pagent_last_error());                                                  \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct(const int64_t *sorted, size_t n, double p) {
    size_t k = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[k < n ? k : n - 1];
}

/* Runs the batch; fills overhead_us[i] (client - server) for question i; exits on any
 * wrong result. Returns the wall time in seconds. */
static double run_batch(const pagent_executor *exec, char **questions, size_t n,
                        int64_t *overhead_us) {
    pagent_results *results = NULL;
    double t0 = now_s();
    CHECK(pagent_execute(exec, (const char *const *)questions, n, &results));
    double wall = now_s() - t0;
    if (pagent_results_len(results) != n) {
        fprintf(stderr, "%zu results for %zu questions\n", pagent_results_len(results), n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        const pagent_result *r = NULL;
        CHECK(pagent_results_get(results, i, &r));
        const char *a = pagent_result_answer(r);
        char want[96];
        int len = snprintf(want, sizeof want, "mock answer to: %s [server_us=", questions[i]);
        if (pagent_result_outcome(r) != PAGENT_OUTCOME_OK || pagent_result_question_index(r) != i ||
            a == NULL || strncmp(a, want, (size_t)len) != 0) {
            fprintf(stderr, "question %zu: bad result: %s\n", i,
                    a ? a : pagent_result_error(r));
            exit(1);
        }
        int64_t server_us = strtoll(a + len, NULL, 10);
        overhead_us[i] = (int64_t)pagent_result_duration_us(r) - server_us;
    }
    pagent_results_free(results);
    return wall;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s BASE_URL [N] [C] [LATENCY_MS] [REPS]\n", argv[0]);
        return 2;
    }
    const char *base_url = argv[1];
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
    size_t c = argc > 3 ? strtoul(argv[3], NULL, 10) : 1000;
    double latency_ms = argc > 4 ? strtod(argv[4], NULL) : 100.0;
    int reps = argc > 5 ? atoi(argv[5]) : 3;
    if (n == 0 || c == 0 || reps <= 0) {
        fprintf(stderr, "N, C and REPS must be positive\n");
        return 2;
    }

    pagent_openai_options *o = pagent_openai_options_new();
    CHECK(pagent_openai_options_set_base_url(o, base_url));
    CHECK(pagent_openai_options_set_model(o, "bench"));
    CHECK(pagent_openai_options_set_api_key_env(o, ""));
    CHECK(pagent_openai_options_set_max_tokens(o, 16));
    CHECK(pagent_openai_options_set_request_timeout_ms(o, 60000));
    pagent_agent *agent = NULL;
    CHECK(pagent_agent_openai(o, &agent));
    pagent_openai_options_free(o);
    pagent_config *config = pagent_config_new();
    CHECK(pagent_config_set_max_concurrency(config, c));
    CHECK(pagent_config_set_agent_timeout_ms(config, 60000));
    pagent_executor *exec = NULL;
    CHECK(pagent_executor_new(config, agent, &exec));
    pagent_config_free(config);
    pagent_agent_free(agent);

    size_t total = n > c ? n : c;
    char **questions = calloc(total, sizeof *questions);
    int64_t *overhead = calloc(total, sizeof *overhead);
    for (size_t i = 0; i < total; i++) {
        questions[i] = malloc(48);
        snprintf(questions[i], 48, "[timing] q%zu", i);
    }
    /* Warm-up: C calls at once open C keep-alive connections. */
    run_batch(exec, questions, c, overhead);

    double ideal = (double)((n + c - 1) / c) * latency_ms / 1000.0;
    for (int rep = 0; rep < reps; rep++) {
        double cpu0 = cpu_s();
        double wall = run_batch(exec, questions, n, overhead);
        double cpu = cpu_s() - cpu0;
        qsort(overhead, n, sizeof *overhead, cmp_i64);
        int64_t p50 = pct(overhead, n, 0.50), p99 = pct(overhead, n, 0.99);
        printf("c_pagent   rep %d: %zu calls at C=%zu in %.3f s (ideal %.3f s, efficiency "
               "%.3f), overhead/call p50 %" PRId64 " us p99 %" PRId64 " us, CPU %.1f us/call\n",
               rep + 1, n, c, wall, ideal, ideal / wall, p50, p99, cpu / (double)n * 1e6);
        printf("bench=openai impl=c_pagent rep=%d n=%zu c=%zu latency_ms=%g wall_s=%.4f "
               "ideal_s=%.4f efficiency=%.4f calls_per_s=%.0f overhead_p50_us=%" PRId64
               " overhead_p99_us=%" PRId64 " cpu_us_per_call=%.1f\n",
               rep + 1, n, c, latency_ms, wall, ideal, ideal / wall, (double)n / wall, p50, p99,
               cpu / (double)n * 1e6);
        fflush(stdout);
    }

    for (size_t i = 0; i < total; i++) {
        free(questions[i]);
    }
    free(questions);
    free(overhead);
    pagent_executor_free(exec);
    CHECK(pagent_shutdown(5000));
    return 0;
}
