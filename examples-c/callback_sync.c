/*
 * callback_sync.c: the agent is a plain blocking C function. The library runs it on its
 * own blocking threads, possibly many at once, so the host data it shares must be
 * thread-safe (atomics here). The free_fn releases that data exactly once, when the
 * agent, every executor and every call using it are gone.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "example.h"

struct host_data {
    atomic_int calls;      /* every call of the callback, retries included */
    atomic_bool flaked;    /* "flaky" has failed once already */
    atomic_int reentrant;  /* a blocking call from inside the callback was refused */
    atomic_int freed;      /* how often free_fn ran: must end at exactly 1 */
    atomic_bool release;   /* lets a "hold" call return */
    pagent_executor *_Atomic exec; /* set by main once the executor exists */
};

static int32_t answer(void *user_data, const char *question, size_t agent_id,
                      pagent_reply *reply) {
    struct host_data *data = user_data;
    atomic_fetch_add(&data->calls, 1);

    if (strcmp(question, "fail") == 0) { /* a permanent failure, with a message */
        pagent_reply_set_error(reply, "this question always fails");
        return PAGENT_CALLBACK_ERROR;
    }
    if (strcmp(question, "flaky") == 0 && !atomic_exchange(&data->flaked, true)) {
        pagent_reply_set_error(reply, "temporarily unavailable");
        return PAGENT_CALLBACK_RETRY; /* the executor retries (max_retries below) */
    }
    if (strcmp(question, "hold") == 0) { /* a slow call: runs until main releases it */
        while (!atomic_load(&data->release)) {
            nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
        }
    }
    if (strcmp(question, "reentry") == 0) {
        /* Blocking library calls are refused inside a callback instead of deadlocking. */
        static const char *const one[] = {"nested"};
        pagent_results *nested = NULL;
        pagent_status st = pagent_execute(atomic_load(&data->exec), one, 1, &nested);
        if (st == PAGENT_ERR_REENTRANT && nested == NULL) {
            atomic_fetch_add(&data->reentrant, 1);
        }
    }

    char text[256];
    snprintf(text, sizeof text, "C agent %zu says: %zu letters in \"%s\"", agent_id,
             strlen(question), question);
    return pagent_reply_set_answer(reply, text) == PAGENT_OK ? PAGENT_CALLBACK_OK
                                                            : PAGENT_CALLBACK_ERROR;
}

static void free_host_data(void *user_data) {
    struct host_data *data = user_data;
    atomic_fetch_add(&data->freed, 1);
    /* A real host would free(data) here; this one keeps it static to check the count. */
}

static struct host_data data;

int main(void) {
    static const char *const questions[] = {"hello", "fail", "flaky", "reentry", "bye"};
    const size_t n = sizeof questions / sizeof questions[0];

    pagent_config *config = example_config(4, 30000);
    CHECK(pagent_config_set_max_retries(config, 2));
    CHECK(pagent_config_set_retry_backoff_ms(config, 1, 10));
    pagent_agent *agent = NULL;
    CHECK(pagent_agent_callback(answer, &data, free_host_data, &agent));
    pagent_executor *exec = NULL;
    CHECK(pagent_executor_new(config, agent, &exec));
    atomic_store(&data.exec, exec);
    pagent_config_free(config);
    pagent_agent_free(agent); /* the executor keeps its own reference */
    EXPECT(atomic_load(&data.freed) == 0, "host data still in use by the executor");

    pagent_results *results = NULL;
    CHECK(pagent_execute(exec, questions, n, &results));
    EXPECT(pagent_results_len(results) == n, "%zu results", pagent_results_len(results));
    for (size_t i = 0; i < n; i++) {
        const pagent_result *r = NULL;
        CHECK(pagent_results_get(results, i, &r));
        pagent_outcome outcome = pagent_result_outcome(r);
        printf("%-8s -> %s%s (%u attempt%s)\n", questions[i],
               outcome == PAGENT_OUTCOME_OK ? "" : "FAILED: ",
               outcome == PAGENT_OUTCOME_OK ? pagent_result_answer(r) : pagent_result_error(r),
               pagent_result_attempts(r), pagent_result_attempts(r) == 1 ? "" : "s");
        if (strcmp(questions[i], "fail") == 0) {
            EXPECT(outcome == PAGENT_OUTCOME_FAILED, "\"fail\" fails, got outcome %u: %s",
                   (unsigned)outcome, pagent_result_error(r));
            EXPECT(pagent_result_answer(r) == NULL, "no answer on failure");
            EXPECT(strstr(pagent_result_error(r), "this question always fails") != NULL,
                   "the host's message is kept: %s", pagent_result_error(r));
            EXPECT(pagent_result_attempts(r) == 1, "a permanent failure is not retried");
        } else {
            EXPECT(outcome == PAGENT_OUTCOME_OK, "%s: %s", questions[i], pagent_result_error(r));
            char expected[256];
            snprintf(expected, sizeof expected, "C agent %zu says: %zu letters in \"%s\"",
                     pagent_result_agent_id(r), strlen(questions[i]), questions[i]);
            EXPECT(strcmp(pagent_result_answer(r), expected) == 0, "answer %s",
                   pagent_result_answer(r));
            EXPECT(pagent_result_attempts(r) == (strcmp(questions[i], "flaky") == 0 ? 2u : 1u),
                   "%s took %u attempts", questions[i], pagent_result_attempts(r));
        }
    }
    pagent_results_free(results);
    EXPECT(atomic_load(&data.calls) == (int)n + 1, "%d calls (one retry)",
           atomic_load(&data.calls));
    EXPECT(atomic_load(&data.reentrant) == 1, "blocking call refused inside the callback");

    /* A running call keeps the agent alive even after the executor is freed. */
    static const char *const hold[] = {"hold"};
    pagent_batch *batch = NULL;
    CHECK(pagent_submit(exec, hold, 1, &batch));
    atomic_store(&data.exec, NULL);
    pagent_executor_free(exec);
    nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
    EXPECT(atomic_load(&data.freed) == 0, "host data still in use by the running call");
    atomic_store(&data.release, true);
    pagent_results *last = NULL;
    CHECK(pagent_batch_wait(batch, -1, &last));
    EXPECT(pagent_results_len(last) == 1, "one result");
    const pagent_result *held = NULL;
    CHECK(pagent_results_get(last, 0, &held));
    EXPECT(pagent_result_outcome(held) == PAGENT_OUTCOME_OK, "hold: %s", pagent_result_error(held));
    pagent_results_free(last);
    pagent_batch_free(batch);

    /* Now nothing uses the agent: free_fn runs once, on some library or host thread as
     * the last call's task ends (here usually already), so allow it a moment. */
    for (int i = 0; i < 200 && atomic_load(&data.freed) == 0; i++) {
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    EXPECT(atomic_load(&data.freed) == 1, "free_fn called once before shutdown, not %d times",
           atomic_load(&data.freed));

    CHECK(pagent_shutdown(1000));
    EXPECT(atomic_load(&data.freed) == 1, "free_fn called exactly once");
    printf("callback_sync: OK (%d calls, free_fn called once)\n", atomic_load(&data.calls));
    return 0;
}
