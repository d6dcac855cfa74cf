/* Every bad input at the boundary returns a status and a message, never a crash:
 * NULL pointers, invalid UTF-8, zero sizes, absurd values, frees of NULL, use after
 * shutdown, and use in a forked child. */
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static pagent_agent *fast_mock(void) {
  pagent_mock_options o;
  pagent_mock_options_init(&o);
  o.latency_us = 1000;
  pagent_agent *a = NULL;
  EXPECT_STATUS(pagent_agent_mock(&o, &a), PAGENT_OK);
  return a;
}

static void null_arguments(pagent_executor *ex, pagent_agent *agent, pagent_config *cfg) {
  const char *qs[] = {"q"};
  pagent_results *res = (pagent_results *)1;
  pagent_batch *batch = NULL;
  pagent_consensus *cons = NULL;
  pagent_executor *ex2 = NULL;
  pagent_agent *a2 = NULL;
  pagent_metrics m;

  EXPECT_STATUS(pagent_execute(NULL, qs, 1, &res), PAGENT_ERR_NULL);
  EXPECT(res == NULL); /* handle out-pointers are NULL after a failure */
  EXPECT_STATUS(pagent_execute(ex, NULL, 1, &res), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_execute(ex, qs, 1, NULL), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_submit(NULL, qs, 1, &batch), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_submit(ex, qs, 1, NULL), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_run_consensus(ex, NULL, 3, &cons), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_run_consensus(NULL, "q", 3, &cons), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_run_consensus(ex, "q", 3, NULL), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_executor_new(cfg, NULL, &ex2), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_executor_new(cfg, agent, NULL), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_executor_new_pool(cfg, NULL, 2, &ex2), PAGENT_ERR_NULL);
  const pagent_agent *with_null[] = {agent, NULL};
  EXPECT_STATUS(pagent_executor_new_pool(cfg, with_null, 2, &ex2), PAGENT_ERR_NULL);
  EXPECT_ERROR_MENTIONS("agents[1]");
  EXPECT(ex2 == NULL);
  EXPECT_STATUS(pagent_agent_mock(NULL, NULL), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_agent_callback(NULL, NULL, NULL, &a2), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_agent_callback_async(NULL, NULL, NULL, &a2), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_agent_python(NULL, &a2), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_config_set_max_concurrency(NULL, 4), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_executor_metrics(NULL, &m), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_executor_metrics(ex, NULL), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_metrics_get(ex, NULL, &m), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_metrics_store(ex, "k", NULL), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_batch_next(NULL, 0, NULL), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_batch_wait(NULL, 0, &res), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_batch_cancel(NULL), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_batch_progress(NULL, NULL, NULL), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_results_get(NULL, 0, NULL), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_pending_complete(NULL, "a"), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_pending_fail(NULL, NULL, false), PAGENT_ERR_NULL);
  EXPECT_STATUS(pagent_reply_set_answer(NULL, "a"), PAGENT_ERR_NULL);
  EXPECT(pagent_executor_metrics_json(NULL) == NULL);

  /* Accessors on NULL return neutral values. */
  EXPECT(pagent_results_len(NULL) == 0);
  EXPECT(pagent_result_answer(NULL) == NULL);
  EXPECT(pagent_result_outcome(NULL) == PAGENT_OUTCOME_FAILED);
  EXPECT(pagent_consensus_answer(NULL) == NULL);
  EXPECT(pagent_consensus_results(NULL) == NULL);
  EXPECT(!pagent_consensus_reached(NULL));

  /* Freeing NULL is a no-op for every handle type. */
  pagent_config_free(NULL);
  pagent_agent_free(NULL);
  pagent_executor_free(NULL);
  pagent_batch_free(NULL);
  pagent_results_free(NULL);
  pagent_result_free(NULL);
  pagent_consensus_free(NULL);
  pagent_string_free(NULL);
  pagent_mock_options_init(NULL);
}

static void bad_values(pagent_executor *ex, pagent_config *cfg) {
  const char bad_utf8[] = {'o', 'k', (char)0xff, (char)0xfe, 0};
  const char *qs[] = {"fine", bad_utf8};
  const char *with_null[] = {"fine", NULL};
  pagent_results *res = NULL;
  pagent_batch *batch = NULL;
  pagent_consensus *cons = NULL;

  EXPECT_STATUS(pagent_execute(ex, qs, 2, &res), PAGENT_ERR_UTF8);
  EXPECT_ERROR_MENTIONS("questions[1]");
  EXPECT_STATUS(pagent_execute(ex, with_null, 2, &res), PAGENT_ERR_NULL);
  EXPECT_ERROR_MENTIONS("questions[1]");
  EXPECT_STATUS(pagent_execute(ex, qs, 0, &res), PAGENT_ERR_INVALID_ARG);
  EXPECT_STATUS(pagent_submit(ex, qs, 0, &batch), PAGENT_ERR_INVALID_ARG);
  EXPECT_STATUS(pagent_execute(ex, qs, SIZE_MAX, &res), PAGENT_ERR_INVALID_ARG);
  EXPECT_STATUS(pagent_run_consensus(ex, "q", 0, &cons), PAGENT_ERR_INVALID_ARG);
  EXPECT_STATUS(pagent_run_consensus(ex, bad_utf8, 3, &cons), PAGENT_ERR_UTF8);
  EXPECT_STATUS(pagent_run_consensus(ex, "q", SIZE_MAX, &cons), PAGENT_ERR_INVALID_ARG);
  EXPECT(res == NULL && batch == NULL && cons == NULL);

  /* Config setters validate and name the field; a rejected value changes nothing. */
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, 0), PAGENT_ERR_CONFIG);
  EXPECT_ERROR_MENTIONS("max_concurrency");
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, SIZE_MAX), PAGENT_ERR_CONFIG);
  EXPECT_STATUS(pagent_config_set_agent_timeout_ms(cfg, 0), PAGENT_ERR_CONFIG);
  EXPECT_ERROR_MENTIONS("agent_timeout");
  EXPECT_STATUS(pagent_config_set_agent_timeout_ms(cfg, UINT64_MAX), PAGENT_ERR_CONFIG);
  EXPECT_STATUS(pagent_config_set_consensus_threshold(cfg, NAN), PAGENT_ERR_CONFIG);
  EXPECT_ERROR_MENTIONS("consensus_threshold");
  EXPECT_STATUS(pagent_config_set_consensus_threshold(cfg, 1.5), PAGENT_ERR_CONFIG);
  EXPECT_STATUS(pagent_config_set_consensus_threshold(cfg, -0.1), PAGENT_ERR_CONFIG);
  EXPECT_STATUS(pagent_config_set_max_retries(cfg, 1000000), PAGENT_ERR_CONFIG);
  EXPECT_STATUS(pagent_config_set_retry_backoff_ms(cfg, 100, 10), PAGENT_ERR_CONFIG);
  EXPECT_STATUS(pagent_config_set_rate_limit(cfg, INFINITY, 1), PAGENT_ERR_CONFIG);
  EXPECT_STATUS(pagent_config_set_rate_limit(cfg, -1.0, 1), PAGENT_ERR_CONFIG);
  EXPECT_STATUS(pagent_config_set_rate_limit(cfg, 10.0, 0), PAGENT_ERR_CONFIG);
  EXPECT_STATUS(pagent_config_set_stream_buffer(cfg, 0), PAGENT_ERR_CONFIG);
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, 3), PAGENT_OK);

  /* Mock options out of range. */
  pagent_mock_options o;
  pagent_agent *a = NULL;
  pagent_mock_options_init(&o);
  o.failure_rate = 2.0;
  EXPECT_STATUS(pagent_agent_mock(&o, &a), PAGENT_ERR_INVALID_ARG);
  EXPECT_ERROR_MENTIONS("failure_rate");
  pagent_mock_options_init(&o);
  o.n_vote_answers = 3; /* with vote_answers NULL */
  EXPECT_STATUS(pagent_agent_mock(&o, &a), PAGENT_ERR_NULL);
  const char *answers[] = {"a", bad_utf8};
  double weights[] = {1.0, NAN};
  pagent_mock_options_init(&o);
  o.vote_answers = answers;
  o.n_vote_answers = 2;
  EXPECT_STATUS(pagent_agent_mock(&o, &a), PAGENT_ERR_UTF8);
  answers[1] = "b";
  o.vote_weights = weights;
  EXPECT_STATUS(pagent_agent_mock(&o, &a), PAGENT_ERR_INVALID_ARG);
  EXPECT(a == NULL);

  /* Absurd waits, unknown keys, out-of-range indices, unknown statuses. */
  const char *one[] = {"q"};
  EXPECT_STATUS(pagent_submit(ex, one, 1, &batch), PAGENT_OK);
  pagent_result *r = NULL;
  EXPECT_STATUS(pagent_batch_next(batch, -2, &r), PAGENT_ERR_INVALID_ARG);
  EXPECT_STATUS(pagent_batch_next(batch, INT64_MAX, &r), PAGENT_ERR_INVALID_ARG);
  EXPECT_STATUS(pagent_batch_wait(batch, -7, &res), PAGENT_ERR_INVALID_ARG);
  EXPECT_STATUS(pagent_batch_wait(batch, -1, &res), PAGENT_OK);
  const pagent_result *borrowed = (const pagent_result *)1;
  EXPECT_STATUS(pagent_results_get(res, 1, &borrowed), PAGENT_ERR_INVALID_ARG);
  EXPECT(borrowed == NULL);
  EXPECT_STATUS(pagent_results_get(res, 0, &borrowed), PAGENT_OK);
  EXPECT(pagent_result_outcome(borrowed) == PAGENT_OUTCOME_OK);
  pagent_results_free(res);
  EXPECT_STATUS(pagent_batch_next(batch, 0, &r), PAGENT_DONE);
  EXPECT(r == NULL);
  pagent_batch_free(batch);

  pagent_metrics m;
  EXPECT_STATUS(pagent_metrics_get(ex, "never stored", &m), PAGENT_ERR_NOT_FOUND);
  EXPECT(strcmp(pagent_status_str(12345), "PAGENT_UNKNOWN_STATUS") == 0);
  EXPECT(strcmp(pagent_status_str(PAGENT_ERR_UTF8), "PAGENT_ERR_UTF8") == 0);
  EXPECT_STATUS(pagent_set_worker_threads(2), PAGENT_ERR_RUNTIME); /* already running */
}

/* Freeing a batch that still runs cancels it: its calls stop being made. */
static void free_running_batch(pagent_agent *agent) {
  pagent_config *cfg = pagent_config_new();
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, 2), PAGENT_OK);
  pagent_mock_options o;
  pagent_mock_options_init(&o);
  o.latency_us = 60ULL * 1000 * 1000; /* a minute per call */
  pagent_agent *slow = NULL;
  EXPECT_STATUS(pagent_agent_mock(&o, &slow), PAGENT_OK);
  pagent_executor *ex = NULL;
  EXPECT_STATUS(pagent_executor_new(cfg, slow, &ex), PAGENT_OK);
  pagent_config_free(cfg);
  pagent_agent_free(slow);
  const char *qs[] = {"a", "b", "c", "d", "e", "f"};
  pagent_batch *batch = NULL;
  EXPECT_STATUS(pagent_submit(ex, qs, 6, &batch), PAGENT_OK);
  pagent_result *r = NULL;
  EXPECT_STATUS(pagent_batch_next(batch, 20, &r), PAGENT_WAIT_TIMEOUT);
  pagent_batch_free(batch);
  /* The executor's concurrency is free again at once: a new batch on a fast agent
   * sharing nothing still works, and the cancelled calls show in its metrics. */
  pagent_metrics m;
  for (int i = 0; i < 200; i++) {
    EXPECT_STATUS(pagent_executor_metrics(ex, &m), PAGENT_OK);
    if (m.total_count == 6) break;
    usleep(5000);
  }
  EXPECT(m.total_count == 6 && m.cancelled_count == 6);
  pagent_executor_free(ex);
  (void)agent;
}

static void forked_child_fails_fast(pagent_executor *ex) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    const char *qs[] = {"q"};
    pagent_results *res = NULL;
    pagent_status s = pagent_execute(ex, qs, 1, &res);
    /* Report through exec, not exit: a memory checker would otherwise count the
     * parent's runtime (whose threads do not exist here) as leaked in this child. */
    if (s == PAGENT_ERR_FORKED && res == NULL) execl("/bin/true", "true", (char *)NULL);
    execl("/bin/false", "false", (char *)NULL);
    _exit(1);
  }
  int status = 0;
  EXPECT(waitpid(pid, &status, 0) == pid);
  EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
  printf("parallel-agents %s\n", pagent_version());
  pagent_agent *agent = fast_mock();
  pagent_config *cfg = pagent_config_new();
  pagent_executor *ex = NULL;
  EXPECT_STATUS(pagent_executor_new(cfg, agent, &ex), PAGENT_OK);

  null_arguments(ex, agent, cfg);
  bad_values(ex, cfg);
  free_running_batch(agent);
  forked_child_fails_fast(ex);

  /* After shutdown every call fails cleanly; shutting down again is harmless. */
  EXPECT_STATUS(pagent_shutdown(1000), PAGENT_OK);
  const char *qs[] = {"q"};
  pagent_results *res = NULL;
  EXPECT_STATUS(pagent_execute(ex, qs, 1, &res), PAGENT_ERR_SHUTDOWN);
  EXPECT_STATUS(pagent_shutdown(0), PAGENT_OK);

  pagent_executor_free(ex);
  pagent_agent_free(agent);
  pagent_config_free(cfg);
  return check_report("boundary");
}
