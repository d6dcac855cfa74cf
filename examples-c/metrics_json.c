/*
 * metrics_json.c: every executor keeps lifetime metrics and a per-key cache (consensus
 * rounds are stored under their question). Read them as plain structs or as JSON.
 */
#include <string.h>

#include "example.h"

#define N_QUESTIONS 24

static void print_metrics(const char *name, const pagent_metrics *m) {
    printf("%-10s total %llu = ok %llu + failed %llu + timed out %llu + cancelled %llu; "
           "min %.1f p50 %.1f p95 %.1f p99 %.1f max %.1f avg %.1f ms; %.1f calls/s\n",
           name, (unsigned long long)m->total_count, (unsigned long long)m->successful_count,
           (unsigned long long)m->failed_count, (unsigned long long)m->timed_out_count,
           (unsigned long long)m->cancelled_count, m->min_duration_us / 1000.0,
           m->p50_duration_us / 1000.0, m->p95_duration_us / 1000.0,
           m->p99_duration_us / 1000.0, m->max_duration_us / 1000.0,
           m->avg_duration_us / 1000.0, m->throughput);
}

/* The invariants every metrics struct must satisfy. */
static void check_metrics(const char *name, const pagent_metrics *m) {
    print_metrics(name, m);
    EXPECT(m->successful_count + m->failed_count + m->timed_out_count + m->cancelled_count ==
               m->total_count,
           "%s: counts add up", name);
    EXPECT(m->attempts >= m->total_count - m->cancelled_count, "%s: attempts", name);
    EXPECT(m->min_duration_us <= m->p50_duration_us && m->p50_duration_us <= m->p95_duration_us &&
               m->p95_duration_us <= m->p99_duration_us && m->p99_duration_us <= m->max_duration_us,
           "%s: min <= p50 <= p95 <= p99 <= max", name);
    EXPECT(m->min_duration_us <= m->avg_duration_us && m->avg_duration_us <= m->max_duration_us,
           "%s: min <= avg <= max", name);
    EXPECT(m->max_duration_us <= m->total_duration_us, "%s: no call outlasts the batch", name);
    EXPECT(m->throughput > 0.0, "%s: throughput", name);
}

int main(void) {
    static const char consensus_question[] = "Is the metrics cache keyed by question?";
    char texts[N_QUESTIONS][32];
    const char *questions[N_QUESTIONS];
    for (size_t i = 0; i < N_QUESTIONS; i++) {
        snprintf(texts[i], sizeof texts[i], "metrics question %zu", i);
        questions[i] = texts[i];
    }

    /* Some calls fail, some hang until the 1 s timeout: every count gets used. */
    pagent_config *config = example_config(8, 1000);
    pagent_mock_options mock;
    pagent_mock_options_init(&mock);
    mock.latency_us = 20000;
    mock.jitter_us = 15000;
    mock.failure_rate = 0.2;
    mock.hang_rate = 0.1;
    mock.seed = 3;
    pagent_agent *agent = NULL;
    CHECK(pagent_agent_mock(&mock, &agent));
    pagent_executor *exec = NULL;
    CHECK(pagent_executor_new(config, agent, &exec));
    pagent_config_free(config);
    pagent_agent_free(agent);

    pagent_results *results = NULL;
    CHECK(pagent_execute(exec, questions, N_QUESTIONS, &results));
    pagent_metrics batch;
    CHECK(pagent_results_metrics(results, &batch));
    check_metrics("batch", &batch);
    EXPECT(batch.total_count == N_QUESTIONS, "one call per question");
    EXPECT(batch.successful_count > 0 && batch.failed_count > 0 && batch.timed_out_count > 0,
           "this seed gives successes, failures and timeouts");
    /* The counts agree with the results themselves. */
    uint64_t ok = 0, failed = 0, timed_out = 0;
    for (size_t i = 0; i < pagent_results_len(results); i++) {
        const pagent_result *r = NULL;
        CHECK(pagent_results_get(results, i, &r));
        switch (pagent_result_outcome(r)) {
        case PAGENT_OUTCOME_OK: ok++; break;
        case PAGENT_OUTCOME_FAILED: failed++; break;
        case PAGENT_OUTCOME_TIMED_OUT: timed_out++; break;
        default: EXPECT(0, "unexpected outcome for %zu", i);
        }
    }
    EXPECT(ok == batch.successful_count && failed == batch.failed_count &&
               timed_out == batch.timed_out_count,
           "metrics match the results");
    pagent_results_free(results);
    CHECK(pagent_metrics_store(exec, "first batch", &batch));

    pagent_consensus *c = NULL;
    CHECK(pagent_run_consensus(exec, consensus_question, 7, &c));
    pagent_metrics round;
    CHECK(pagent_results_metrics(pagent_consensus_results(c), &round));
    pagent_consensus_free(c);

    /* The per-key cache: the consensus round under its question, the batch under ours. */
    pagent_metrics cached;
    CHECK(pagent_metrics_get(exec, consensus_question, &cached));
    check_metrics("consensus", &cached);
    EXPECT(cached.total_count == 7, "7 voters, got %llu", (unsigned long long)cached.total_count);
    EXPECT(cached.successful_count == round.successful_count &&
               cached.total_duration_us == round.total_duration_us,
           "the cache holds the round's metrics");
    CHECK(pagent_metrics_get(exec, "first batch", &cached));
    EXPECT(cached.total_count == batch.total_count && cached.p99_duration_us == batch.p99_duration_us,
           "stored metrics come back unchanged");
    pagent_metrics untouched = {.total_count = 12345};
    EXPECT(pagent_metrics_get(exec, "no such key", &untouched) == PAGENT_ERR_NOT_FOUND,
           "unknown key");
    EXPECT(untouched.total_count == 12345, "out left untouched on NOT_FOUND");

    pagent_metrics life;
    CHECK(pagent_executor_metrics(exec, &life));
    check_metrics("lifetime", &life);
    EXPECT(life.total_count == N_QUESTIONS + 7, "lifetime counts every call: %llu",
           (unsigned long long)life.total_count);
    EXPECT(life.successful_count == batch.successful_count + round.successful_count &&
               life.failed_count == batch.failed_count + round.failed_count &&
               life.timed_out_count == batch.timed_out_count + round.timed_out_count,
           "lifetime = batch + round");

    char *json = pagent_executor_metrics_json(exec);
    EXPECT(json != NULL, "metrics JSON");
    printf("%s\n", json);
    EXPECT(json[0] == '{' && strstr(json, "\"lifetime\"") && strstr(json, "\"by_key\"") &&
               strstr(json, consensus_question) && strstr(json, "\"first batch\"") &&
               strstr(json, "p99_duration_us"),
           "JSON has lifetime, by_key and both keys");
    pagent_string_free(json);

    pagent_executor_free(exec);
    CHECK(pagent_shutdown(1000));
    printf("metrics_json: OK\n");
    return 0;
}
