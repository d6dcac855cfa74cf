/* Host callbacks at the boundary: errors, retries, unknown return codes, blocking past
 * the timeout, panics inside the library, re-entry, and completion-based agents whose
 * pending handles are completed late or twice. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "check.h"

typedef struct {
  atomic_int calls;
  atomic_int freed;
  atomic_int reentry_status;
  pagent_executor *exec; /* for the re-entry test */
} host_state;

/* strcmp that treats NULL as different from everything. */
static int streq(const char *a, const char *b) { return a != NULL && b != NULL && strcmp(a, b) == 0; }
static int contains(const char *hay, const char *needle) { return hay != NULL && strstr(hay, needle) != NULL; }

static void host_free(void *user_data) { atomic_fetch_add(&((host_state *)user_data)->freed, 1); }

/* Behaves as the question says. */
static int32_t scripted(void *user_data, const char *q, size_t agent_id, pagent_reply *reply) {
  host_state *st = user_data;
  int n = atomic_fetch_add(&st->calls, 1);
  (void)agent_id;
  (void)n;
  if (strcmp(q, "error") == 0) {
    pagent_reply_set_error(reply, "host says no");
    return PAGENT_CALLBACK_ERROR;
  }
  if (strcmp(q, "retry") == 0) {
    pagent_reply_set_error(reply, "try again");
    return PAGENT_CALLBACK_RETRY;
  }
  if (strcmp(q, "weird") == 0) return 42;
  if (strcmp(q, "silent") == 0) return PAGENT_CALLBACK_OK; /* no answer set */
  if (strcmp(q, "block") == 0) {
    usleep(1500 * 1000);
    pagent_reply_set_answer(reply, "too late");
    return PAGENT_CALLBACK_OK;
  }
  if (strcmp(q, "reenter") == 0) {
    const char *qs[] = {"inner"};
    pagent_results *res = NULL;
    pagent_status s = pagent_execute(st->exec, qs, 1, &res);
    atomic_store(&st->reentry_status, (int)s);
    pagent_results_free(res);
    pagent_reply_set_answer(reply, "survived");
    return PAGENT_CALLBACK_OK;
  }
  const char bad[] = {(char)0xc3, (char)0x28, 0};
  if (strcmp(q, "bad-utf8-answer") == 0) {
    if (pagent_reply_set_answer(reply, bad) != PAGENT_ERR_UTF8) return 77;
    return PAGENT_CALLBACK_OK; /* answer rejected above, so this is "no answer" */
  }
  pagent_reply_set_answer(reply, q);
  return PAGENT_CALLBACK_OK;
}

static const pagent_result *get(const pagent_results *res, size_t i) {
  const pagent_result *r = NULL;
  EXPECT_STATUS(pagent_results_get(res, i, &r), PAGENT_OK);
  return r;
}

static void sync_callbacks(void) {
  host_state st = {0};
  pagent_agent *agent = NULL;
  EXPECT_STATUS(pagent_agent_callback(scripted, &st, host_free, &agent), PAGENT_OK);
  pagent_config *cfg = pagent_config_new();
  EXPECT_STATUS(pagent_config_set_agent_timeout_ms(cfg, 1000), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_max_retries(cfg, 2), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_retry_backoff_ms(cfg, 1, 2), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, 8), PAGENT_OK);
  pagent_executor *ex = NULL;
  EXPECT_STATUS(pagent_executor_new(cfg, agent, &ex), PAGENT_OK);
  st.exec = ex;
  pagent_agent_free(agent); /* the executor keeps its own reference */
  pagent_config_free(cfg);
  EXPECT(atomic_load(&st.freed) == 0);

  const char *qs[] = {"hello", "error", "retry", "weird", "silent", "block", "reenter", "bad-utf8-answer"};
  pagent_results *res = NULL;
  EXPECT_STATUS(pagent_execute(ex, qs, 8, &res), PAGENT_OK);
  EXPECT(pagent_results_len(res) == 8);
  const pagent_result *r;

  r = get(res, 0);
  EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_OK);
  EXPECT(streq(pagent_result_answer(r), "hello"));
  EXPECT(pagent_result_error(r) == NULL);

  r = get(res, 1);
  EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_FAILED);
  EXPECT(streq(pagent_result_error(r), "host says no"));
  EXPECT(pagent_result_answer(r) == NULL);
  EXPECT(pagent_result_attempts(r) == 1); /* not retryable */

  r = get(res, 2);
  EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_FAILED);
  EXPECT(pagent_result_attempts(r) == 3); /* first try + 2 retries */

  r = get(res, 3);
  EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_FAILED);
  EXPECT(contains(pagent_result_error(r), "unknown code 42"));

  r = get(res, 4);
  EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_FAILED);
  EXPECT(contains(pagent_result_error(r), "without setting an answer"));

  r = get(res, 5);
  EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_TIMED_OUT);
  EXPECT(pagent_result_duration_us(r) >= 1000000);

  r = get(res, 6);
  EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_OK);
  EXPECT(atomic_load(&st.reentry_status) == PAGENT_ERR_REENTRANT);

  r = get(res, 7);
  EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_FAILED);

  pagent_results_free(res);
  pagent_executor_free(ex);
  /* The blocked call may still be running on a library thread; its host data is freed
   * once it returns, exactly once. */
  for (int i = 0; i < 500 && atomic_load(&st.freed) == 0; i++) usleep(10 * 1000);
  EXPECT(atomic_load(&st.freed) == 1);
}

/* A Rust panic inside an agent becomes a failed result, never an abort. */
static void panics_are_contained(void) {
  pagent_mock_options o;
  pagent_mock_options_init(&o);
  o.latency_us = 0;
  o.panic_rate = 1.0;
  pagent_agent *agent = NULL;
  EXPECT_STATUS(pagent_agent_mock(&o, &agent), PAGENT_OK);
  pagent_executor *ex = NULL;
  EXPECT_STATUS(pagent_executor_new(NULL, agent, &ex), PAGENT_OK);
  const char *qs[] = {"a", "b", "c"};
  pagent_results *res = NULL;
  EXPECT_STATUS(pagent_execute(ex, qs, 3, &res), PAGENT_OK);
  for (size_t i = 0; i < 3; i++) {
    const pagent_result *r = get(res, i);
    EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_FAILED);
    EXPECT(contains(pagent_result_error(r), "panicked"));
  }
  pagent_results_free(res);
  pagent_executor_free(ex);
  pagent_agent_free(agent);
}

/* Completion-based agent: the start callback parks each pending handle; a host thread
 * completes some in time, one late (after its timeout), and one twice. */
#define NPEND 4
typedef struct {
  pthread_mutex_t mu;
  pagent_pending *pending[NPEND];
  char *questions[NPEND];
  int count;
  atomic_int freed;
} parked;

static void park(void *user_data, const char *q, size_t agent_id, pagent_pending *p) {
  parked *pk = user_data;
  (void)agent_id;
  pthread_mutex_lock(&pk->mu);
  if (pk->count < NPEND) {
    pk->questions[pk->count] = strdup(q);
    pk->pending[pk->count++] = p;
  }
  pthread_mutex_unlock(&pk->mu);
}

static void parked_free(void *user_data) { atomic_fetch_add(&((parked *)user_data)->freed, 1); }

static void async_completion(void) {
  parked pk = {.mu = PTHREAD_MUTEX_INITIALIZER};
  pagent_agent *agent = NULL;
  EXPECT_STATUS(pagent_agent_callback_async(park, &pk, parked_free, &agent), PAGENT_OK);
  pagent_config *cfg = pagent_config_new();
  EXPECT_STATUS(pagent_config_set_agent_timeout_ms(cfg, 1500), PAGENT_OK);
  pagent_executor *ex = NULL;
  EXPECT_STATUS(pagent_executor_new(cfg, agent, &ex), PAGENT_OK);
  pagent_config_free(cfg);
  pagent_agent_free(agent);

  const char *qs[] = {"q0", "q1", "q2", "q3"};
  pagent_batch *batch = NULL;
  EXPECT_STATUS(pagent_submit(ex, qs, NPEND, &batch), PAGENT_OK);
  for (int i = 0; i < 200; i++) {
    pthread_mutex_lock(&pk.mu);
    int c = pk.count;
    pthread_mutex_unlock(&pk.mu);
    if (c == NPEND) break;
    usleep(5000);
  }
  EXPECT(pk.count == NPEND);
  int late = -1;
  for (int i = 0; i < NPEND; i++) {
    if (strcmp(pk.questions[i], "q0") == 0) {
      EXPECT_STATUS(pagent_pending_complete(pk.pending[i], "answer zero"), PAGENT_OK);
      EXPECT_STATUS(pagent_pending_complete(pk.pending[i], "again"), PAGENT_ERR_STALE);
    } else if (strcmp(pk.questions[i], "q1") == 0) {
      EXPECT_STATUS(pagent_pending_fail(pk.pending[i], "host failure", false), PAGENT_OK);
      EXPECT_STATUS(pagent_pending_fail(pk.pending[i], NULL, false), PAGENT_ERR_STALE);
    } else if (strcmp(pk.questions[i], "q2") == 0) {
      const char bad[] = {(char)0xff, 0};
      EXPECT_STATUS(pagent_pending_complete(pk.pending[i], bad), PAGENT_ERR_UTF8);
    } else {
      late = i; /* q3: left to time out */
    }
  }
  pagent_results *res = NULL;
  EXPECT_STATUS(pagent_batch_wait(batch, -1, &res), PAGENT_OK);
  EXPECT(pagent_results_len(res) == NPEND);
  EXPECT(pagent_result_outcome(get(res, 0)) == PAGENT_OUTCOME_OK);
  EXPECT(streq(pagent_result_answer(get(res, 0)), "answer zero"));
  EXPECT(pagent_result_outcome(get(res, 1)) == PAGENT_OUTCOME_FAILED);
  EXPECT(streq(pagent_result_error(get(res, 1)), "host failure"));
  EXPECT(pagent_result_outcome(get(res, 2)) == PAGENT_OUTCOME_FAILED);
  EXPECT(pagent_result_outcome(get(res, 3)) == PAGENT_OUTCOME_TIMED_OUT);
  /* Completing after the timeout is harmless. */
  EXPECT(late >= 0);
  if (late >= 0) EXPECT_STATUS(pagent_pending_complete(pk.pending[late], "late"), PAGENT_ERR_STALE);
  pagent_results_free(res);
  pagent_batch_free(batch);
  pagent_executor_free(ex);
  /* Released once the batch's last internal reference goes, on a library thread. */
  for (int i = 0; i < 500 && atomic_load(&pk.freed) == 0; i++) usleep(10 * 1000);
  EXPECT(atomic_load(&pk.freed) == 1);
  for (int i = 0; i < NPEND; i++) free(pk.questions[i]);
}

int main(void) {
  sync_callbacks();
  panics_are_contained();
  async_completion();
  EXPECT_STATUS(pagent_shutdown(2000), PAGENT_OK);
  return check_report("callbacks");
}
