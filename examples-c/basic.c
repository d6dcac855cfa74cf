/*
 * basic.c: the shortest useful host. Build a config, make a mock agent, answer a few
 * questions in one blocking call, print the answers, free everything, shut down.
 */
#include <stdbool.h>
#include <string.h>

#include "example.h"

int main(void) {
    static const char *const questions[] = {
        "What is Rust?",
        "What is Tokio?",
        "Why a C ABI?",
        "What does a semaphore bound?",
        "Who frees the results?",
    };
    const size_t n = sizeof questions / sizeof questions[0];

    printf("parallel-agents %s\n", pagent_version());

    /* The executor copies the config and keeps its own agent reference. */
    pagent_config *config = example_config(4, 30000);
    pagent_mock_options mock;
    pagent_mock_options_init(&mock);
    mock.latency_us = 20000; /* 20 ms per call */
    pagent_agent *agent = NULL;
    CHECK(pagent_agent_mock(&mock, &agent));
    pagent_executor *exec = NULL;
    CHECK(pagent_executor_new(config, agent, &exec));
    pagent_config_free(config);
    pagent_agent_free(agent);

    pagent_results *results = NULL;
    CHECK(pagent_execute(exec, questions, n, &results));
    EXPECT(pagent_results_len(results) == n, "%zu results", pagent_results_len(results));

    bool seen[sizeof questions / sizeof questions[0]] = {false};
    for (size_t i = 0; i < n; i++) {
        const pagent_result *r = NULL;
        CHECK(pagent_results_get(results, i, &r));
        size_t index = pagent_result_question_index(r);
        EXPECT(index == i, "results come in question order, got index %zu at %zu", index, i);
        EXPECT(!seen[index], "index %zu twice", index);
        seen[index] = true;
        EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_OK, "outcome %u: %s",
               (unsigned)pagent_result_outcome(r), pagent_result_error(r));
        const char *answer = pagent_result_answer(r);
        EXPECT(answer != NULL, "an answer for question %zu", i);
        EXPECT(strcmp(pagent_result_question(r), questions[i]) == 0, "question %zu echoed", i);

        /* The mock's template answer names the agent slot and the question. */
        char expected[256];
        snprintf(expected, sizeof expected, "Agent %zu answer for '%s'",
                 pagent_result_agent_id(r), questions[i]);
        EXPECT(strcmp(answer, expected) == 0, "answer \"%s\", wanted \"%s\"", answer, expected);
        EXPECT(pagent_result_error(r) == NULL, "no error on success");
        uint64_t us = pagent_result_duration_us(r);
        EXPECT(us >= 15000, "a 20 ms mock call took %llu us", (unsigned long long)us);
        printf("[%zu] %-30s -> %s (%.1f ms)\n", index, questions[i], answer, us / 1000.0);
    }
    for (size_t i = 0; i < n; i++) {
        EXPECT(seen[i], "index %zu present", i);
    }

    pagent_metrics m;
    CHECK(pagent_results_metrics(results, &m));
    EXPECT(m.successful_count == n && m.total_count == n, "%llu ok of %llu",
           (unsigned long long)m.successful_count, (unsigned long long)m.total_count);
    printf("batch: %zu ok in %.1f ms, %.1f calls/s\n", n, m.total_duration_us / 1000.0,
           m.throughput);

    pagent_results_free(results);
    pagent_executor_free(exec);
    CHECK(pagent_shutdown(1000));
    printf("basic: OK\n");
    return 0;
}
