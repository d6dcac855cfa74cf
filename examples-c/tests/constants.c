/* Every constant of the header is usable from C as a host would use it: in constant
 * expressions (_Static_assert, #if, case labels), with the value and sign it documents
 * (PAGENT_MAX_TIMEOUT_MS once overflowed int and read as negative), and as an argument
 * the library accepts at the limit and refuses just past it. tests/constants.cpp does the
 * same from C++ (constexpr). A Rust test checks both files name every constant of the
 * header. */
#include <stdint.h>

#include "check.h"

/* Limits. */
_Static_assert(PAGENT_MAX_TIMEOUT_MS == 30LL * 24 * 3600 * 1000, "30 days in ms");
_Static_assert(PAGENT_MAX_TIMEOUT_MS > INT32_MAX, "needs more than an int: a wide literal");
_Static_assert(PAGENT_MAX_BATCH == 100000000, "PAGENT_MAX_BATCH");
_Static_assert(PAGENT_MAX_CONSENSUS_AGENTS == 100000, "PAGENT_MAX_CONSENSUS_AGENTS");
_Static_assert(PAGENT_MAX_CONSENSUS_AGENTS <= PAGENT_MAX_BATCH, "a round is a batch");
_Static_assert(PAGENT_METRICS_CACHE_CAPACITY == 1024, "PAGENT_METRICS_CACHE_CAPACITY");
#if PAGENT_MAX_TIMEOUT_MS <= 0 || PAGENT_MAX_BATCH <= 0 || PAGENT_MAX_CONSENSUS_AGENTS <= 0 || \
    PAGENT_METRICS_CACHE_CAPACITY <= 0
#error "a limit is not positive in the preprocessor"
#endif
static const int64_t max_timeout_ms = PAGENT_MAX_TIMEOUT_MS;
static const size_t max_batch = PAGENT_MAX_BATCH;
static const size_t max_voters = PAGENT_MAX_CONSENSUS_AGENTS;
static char cache_slots[PAGENT_METRICS_CACHE_CAPACITY]; /* an array size */

/* The version: in the preprocessor (for feature checks) and equal to pagent_version(). */
#if PAGENT_VERSION_MAJOR < 0 || PAGENT_VERSION_MINOR < 0 || PAGENT_VERSION_PATCH < 0
#error "a version number is negative in the preprocessor"
#endif
static int version_matches(void) {
  char want[64];
  snprintf(want, sizeof want, "%d.%d.%d", (int)PAGENT_VERSION_MAJOR, (int)PAGENT_VERSION_MINOR,
           (int)PAGENT_VERSION_PATCH);
  return strcmp(want, pagent_version()) == 0;
}

/* Callback return codes. */
_Static_assert(PAGENT_CALLBACK_OK == 0 && PAGENT_CALLBACK_ERROR == 1 && PAGENT_CALLBACK_RETRY == 2,
               "callback codes");

/* Status codes: values fixed forever, and pagent_status_str agrees with the names. */
#define STATUS(s) {s, #s}
static const struct {
  pagent_status status;
  const char *name;
} statuses[] = {
    STATUS(PAGENT_OK),           STATUS(PAGENT_DONE),          STATUS(PAGENT_WAIT_TIMEOUT),
    STATUS(PAGENT_ERR_NULL),     STATUS(PAGENT_ERR_INVALID_ARG), STATUS(PAGENT_ERR_UTF8),
    STATUS(PAGENT_ERR_CONFIG),   STATUS(PAGENT_ERR_NOT_FOUND), STATUS(PAGENT_ERR_STALE),
    STATUS(PAGENT_ERR_REENTRANT), STATUS(PAGENT_ERR_SHUTDOWN), STATUS(PAGENT_ERR_FORKED),
    STATUS(PAGENT_ERR_RUNTIME),  STATUS(PAGENT_ERR_PYTHON),    STATUS(PAGENT_ERR_PANIC),
    STATUS(PAGENT_ERR_DUPLICATE_ID), STATUS(PAGENT_ERR_JOURNAL), STATUS(PAGENT_ERR_JOURNAL_LOCKED),
    STATUS(PAGENT_ERR_JOURNAL_MISMATCH), STATUS(PAGENT_ERR_JOURNAL_VERSION),
};
_Static_assert(PAGENT_OK == 0 && PAGENT_DONE == 1 && PAGENT_WAIT_TIMEOUT == 2, "non-failures");
_Static_assert(PAGENT_ERR_NULL == 100 && PAGENT_ERR_INVALID_ARG == 101 && PAGENT_ERR_UTF8 == 102 &&
                   PAGENT_ERR_CONFIG == 103 && PAGENT_ERR_NOT_FOUND == 104 &&
                   PAGENT_ERR_STALE == 105 && PAGENT_ERR_DUPLICATE_ID == 106,
               "argument failures");
_Static_assert(PAGENT_ERR_REENTRANT == 110 && PAGENT_ERR_SHUTDOWN == 111 &&
                   PAGENT_ERR_FORKED == 112 && PAGENT_ERR_RUNTIME == 113 &&
                   PAGENT_ERR_PYTHON == 120 && PAGENT_ERR_JOURNAL == 130 &&
                   PAGENT_ERR_JOURNAL_LOCKED == 131 && PAGENT_ERR_JOURNAL_MISMATCH == 132 &&
                   PAGENT_ERR_JOURNAL_VERSION == 133 && PAGENT_ERR_PANIC == 199,
               "runtime failures");

/* Outcomes, as case labels. */
_Static_assert(PAGENT_OUTCOME_OK == 0 && PAGENT_OUTCOME_FAILED == 1 &&
                   PAGENT_OUTCOME_TIMED_OUT == 2 && PAGENT_OUTCOME_CANCELLED == 3,
               "outcomes");
static int outcome_is_answer(pagent_outcome o) {
  switch (o) {
    case PAGENT_OUTCOME_OK:
      return 1;
    case PAGENT_OUTCOME_FAILED:
    case PAGENT_OUTCOME_TIMED_OUT:
    case PAGENT_OUTCOME_CANCELLED:
      return 0;
  }
  return -1;
}

static int answer_fn(void *user_data, const char *question, size_t agent_id,
                     pagent_reply *reply) {
  (void)user_data;
  (void)agent_id;
  return pagent_reply_set_answer(reply, question) == PAGENT_OK ? PAGENT_CALLBACK_OK
                                                               : PAGENT_CALLBACK_ERROR;
}

int main(void) {
  EXPECT(version_matches());
  for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
    EXPECT(strcmp(pagent_status_str((uint32_t)statuses[i].status), statuses[i].name) == 0);
  }

  pagent_agent *agent = NULL;
  EXPECT_STATUS(pagent_agent_callback(answer_fn, NULL, NULL, &agent), PAGENT_OK);
  pagent_executor *ex = NULL;
  EXPECT_STATUS(pagent_executor_new(NULL, agent, &ex), PAGENT_OK);

  /* The longest wait is accepted; one ms more is refused. */
  const char *qs[] = {"q"};
  pagent_batch *batch = NULL;
  EXPECT_STATUS(pagent_submit(ex, qs, 1, &batch), PAGENT_OK);
  pagent_result *r = NULL;
  EXPECT_STATUS(pagent_batch_next(batch, max_timeout_ms + 1, &r), PAGENT_ERR_INVALID_ARG);
  EXPECT_STATUS(pagent_batch_next(batch, PAGENT_MAX_TIMEOUT_MS, &r), PAGENT_OK);
  EXPECT(r != NULL && outcome_is_answer(pagent_result_outcome(r)) == 1);
  pagent_result_free(r);
  pagent_batch_free(batch);

  /* Batch and consensus sizes: one past each limit is refused, naming the argument. */
  pagent_results *res = NULL;
  EXPECT_STATUS(pagent_execute(ex, qs, max_batch + 1, &res), PAGENT_ERR_INVALID_ARG);
  pagent_consensus *c = NULL;
  EXPECT_STATUS(pagent_run_consensus(ex, "q", max_voters + 1, &c), PAGENT_ERR_INVALID_ARG);
  EXPECT_ERROR_MENTIONS("n_agents");
  EXPECT(c == NULL);

  /* The metrics cache keeps PAGENT_METRICS_CACHE_CAPACITY keys: one more drops the oldest. */
  pagent_metrics m;
  memset(&m, 0, sizeof m);
  char key[32];
  for (size_t i = 0; i <= sizeof cache_slots; i++) {
    snprintf(key, sizeof key, "key %zu", i);
    m.attempts = i;
    EXPECT_STATUS(pagent_metrics_store(ex, key, &m), PAGENT_OK);
  }
  EXPECT_STATUS(pagent_metrics_get(ex, "key 0", &m), PAGENT_ERR_NOT_FOUND);
  snprintf(key, sizeof key, "key %d", PAGENT_METRICS_CACHE_CAPACITY);
  EXPECT_STATUS(pagent_metrics_get(ex, key, &m), PAGENT_OK);
  EXPECT(m.attempts == PAGENT_METRICS_CACHE_CAPACITY);

  pagent_executor_free(ex);
  pagent_agent_free(agent);
  return check_report("constants");
}
