/*
 * streaming.c: submit a batch, return at once, and take results as they finish, in
 * completion order, with a progress line. The mock's jitter makes fast questions
 * overtake slow ones, so the order differs from the input order.
 */
#include <stdbool.h>
#include <string.h>

#include "example.h"

#define N_QUESTIONS 40

int main(void) {
    char texts[N_QUESTIONS][32];
    const char *questions[N_QUESTIONS];
    for (size_t i = 0; i < N_QUESTIONS; i++) {
        snprintf(texts[i], sizeof texts[i], "question #%zu", i);
        questions[i] = texts[i];
    }

    pagent_config *config = example_config(8, 30000);
    CHECK(pagent_config_set_stream_buffer(config, 16));
    pagent_mock_options mock;
    pagent_mock_options_init(&mock);
    mock.latency_us = 30000; /* 30 ms +/- 25 ms */
    mock.jitter_us = 25000;
    mock.seed = 7;
    pagent_agent *agent = NULL;
    CHECK(pagent_agent_mock(&mock, &agent));
    pagent_executor *exec = NULL;
    CHECK(pagent_executor_new(config, agent, &exec));
    pagent_config_free(config);
    pagent_agent_free(agent);

    pagent_batch *batch = NULL;
    CHECK(pagent_submit(exec, questions, N_QUESTIONS, &batch));

    bool seen[N_QUESTIONS] = {false};
    size_t received = 0, out_of_order = 0, waits = 0, last_index = 0;
    for (;;) {
        pagent_result *r = NULL;
        pagent_status st = pagent_batch_next(batch, 1000, &r);
        if (st == PAGENT_DONE) {
            EXPECT(r == NULL, "no result with PAGENT_DONE");
            break;
        }
        if (st == PAGENT_WAIT_TIMEOUT) { /* nothing within a second: just wait again */
            EXPECT(r == NULL && ++waits < 30, "a result within 30 s");
            continue;
        }
        CHECK(st);
        size_t index = pagent_result_question_index(r);
        EXPECT(index < N_QUESTIONS, "index %zu in range", index);
        EXPECT(!seen[index], "index %zu comes out once", index);
        seen[index] = true;
        EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_OK, "outcome of %zu: %s", index,
               pagent_result_error(r));
        EXPECT(strcmp(pagent_result_question(r), questions[index]) == 0, "question %zu", index);
        if (received > 0 && index < last_index) {
            out_of_order++;
        }
        last_index = index;
        received++;

        size_t done = 0, total = 0;
        CHECK(pagent_batch_progress(batch, &done, &total));
        EXPECT(total == N_QUESTIONS && done >= received && done <= total, "progress %zu/%zu",
               done, total);
        printf("[%2zu/%zu] #%-2zu %5.1f ms  %s\n", received, total, index,
               pagent_result_duration_us(r) / 1000.0, pagent_result_answer(r));
        pagent_result_free(r);
    }
    EXPECT(received == N_QUESTIONS, "%zu results", received);
    for (size_t i = 0; i < N_QUESTIONS; i++) {
        EXPECT(seen[i], "index %zu came out", i);
    }
    /* Done stays done. */
    pagent_result *extra = NULL;
    EXPECT(pagent_batch_next(batch, 0, &extra) == PAGENT_DONE && extra == NULL, "still done");
    EXPECT(out_of_order > 0, "jitter reorders completions");
    printf("completion order differed from input order %zu times\n", out_of_order);

    pagent_metrics m;
    CHECK(pagent_batch_metrics(batch, &m));
    EXPECT(m.successful_count == N_QUESTIONS && m.total_count == N_QUESTIONS, "%llu ok",
           (unsigned long long)m.successful_count);
    printf("batch: %llu ok, p50 %.1f ms, max %.1f ms, total %.1f ms\n",
           (unsigned long long)m.successful_count, m.p50_duration_us / 1000.0,
           m.max_duration_us / 1000.0, m.total_duration_us / 1000.0);

    pagent_batch_free(batch);
    pagent_executor_free(exec);
    CHECK(pagent_shutdown(1000));
    printf("streaming: OK\n");
    return 0;
}
