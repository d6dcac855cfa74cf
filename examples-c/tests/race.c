/* Sixteen host threads on several executors: submits, waits, cancels and frees racing
 * with completions, and one thread freeing batches while their calls still run. Nothing
 * is lost (every batch that is read to the end returns each index once), nothing is freed
 * twice, and valgrind sees no errors. */
#include <pthread.h>
#include <unistd.h>

#include "check.h"

#define THREADS 16
#define EXECUTORS 3
#define ROUNDS 12
#define N 40

static pagent_executor *execs[EXECUTORS];
static int problems[THREADS];

static void *worker(void *arg) {
  int t = (int)(size_t)arg;
  const char *qs[N];
  char texts[N][16];
  for (int i = 0; i < N; i++) {
    snprintf(texts[i], sizeof texts[i], "t%dq%d", t, i);
    qs[i] = texts[i];
  }
  for (int round = 0; round < ROUNDS; round++) {
    pagent_executor *ex = execs[(t + round) % EXECUTORS];
    pagent_batch *b = NULL;
    if (pagent_submit(ex, qs, N, &b) != PAGENT_OK) {
      problems[t]++;
      continue;
    }
    int mode = (t + round) % 4;
    if (mode == 0) { /* free at once, while calls run */
      pagent_batch_free(b);
      continue;
    }
    if (mode == 1) { /* read a few, cancel, read to the end */
      pagent_result *r = NULL;
      for (int k = 0; k < 3 && pagent_batch_next(b, -1, &r) == PAGENT_OK; k++) pagent_result_free(r);
      pagent_batch_cancel(b);
    }
    if (mode == 2) { /* read a few then free with results still in flight */
      pagent_result *r = NULL;
      if (pagent_batch_next(b, 50, &r) == PAGENT_OK) pagent_result_free(r);
      pagent_batch_free(b);
      continue;
    }
    /* modes 1 and 3: wait for the rest and check nothing is lost */
    unsigned char seen[N] = {0};
    size_t taken = 0;
    pagent_result *r = NULL;
    pagent_status s;
    if (mode == 3) {
      while ((s = pagent_batch_next(b, -1, &r)) == PAGENT_OK) {
        seen[pagent_result_question_index(r)]++;
        taken++;
        pagent_result_free(r);
      }
      if (s != PAGENT_DONE || taken != N) problems[t]++;
      for (int i = 0; i < N; i++)
        if (seen[i] != 1) problems[t]++;
    } else {
      pagent_results *res = NULL;
      if (pagent_batch_wait(b, -1, &res) != PAGENT_OK) problems[t]++;
      if (pagent_results_len(res) != N - 3) problems[t]++;
      pagent_results_free(res);
    }
    pagent_batch_free(b);
  }
  return NULL;
}

int main(void) {
  pagent_mock_options o;
  pagent_mock_options_init(&o);
  o.latency_us = 1000;
  o.jitter_us = 900;
  o.failure_rate = 0.05;
  pagent_agent *agent = NULL;
  EXPECT_STATUS(pagent_agent_mock(&o, &agent), PAGENT_OK);
  pagent_config *cfg = pagent_config_new();
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, 16), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_stream_buffer(cfg, 4), PAGENT_OK);
  for (int e = 0; e < EXECUTORS; e++) EXPECT_STATUS(pagent_executor_new(cfg, agent, &execs[e]), PAGENT_OK);
  pagent_config_free(cfg);
  pagent_agent_free(agent);

  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, worker, (void *)(size_t)t);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < THREADS; t++) {
    if (problems[t]) fprintf(stderr, "thread %d: %d problems\n", t, problems[t]);
    EXPECT(problems[t] == 0);
  }
  /* Every call of every batch was accounted for by its executor. */
  uint64_t total = 0;
  for (int e = 0; e < EXECUTORS; e++) {
    pagent_metrics m;
    for (int k = 0; k < 200; k++) { /* freed batches finish in the background */
      EXPECT_STATUS(pagent_executor_metrics(execs[e], &m), PAGENT_OK);
      uint64_t want = 0;
      for (int t = 0; t < THREADS; t++)
        for (int round = 0; round < ROUNDS; round++)
          if ((t + round) % EXECUTORS == e) want += N;
      if (m.total_count == want) break;
      usleep(10000);
    }
    total += m.total_count;
    pagent_executor_free(execs[e]);
  }
  EXPECT(total == (uint64_t)THREADS * ROUNDS * N);
  EXPECT_STATUS(pagent_shutdown(2000), PAGENT_OK);
  return check_report("race");
}
