/* Eight host threads submit to one executor at once, half streaming and half blocking;
 * every answer comes back exactly once. A ninth thread watches progress meanwhile. */
#include <pthread.h>

#include "check.h"

#define THREADS 8
#define PER_THREAD 250

static pagent_executor *ex;
static int failures[THREADS];

static void *worker(void *arg) {
  int t = (int)(size_t)arg;
  char *texts[PER_THREAD];
  const char *qs[PER_THREAD];
  for (int i = 0; i < PER_THREAD; i++) {
    texts[i] = malloc(32);
    snprintf(texts[i], 32, "t%d-q%d", t, i);
    qs[i] = texts[i];
  }
  unsigned char seen[PER_THREAD] = {0};
  char want[96];
  if (t % 2 == 0) {
    pagent_batch *b = NULL;
    if (pagent_submit(ex, qs, PER_THREAD, &b) != PAGENT_OK) failures[t]++;
    pagent_result *r = NULL;
    pagent_status s;
    while ((s = pagent_batch_next(b, -1, &r)) == PAGENT_OK) {
      size_t i = pagent_result_question_index(r);
      snprintf(want, sizeof want, "Agent %zu answer for '%s'", i, texts[i]);
      if (i >= PER_THREAD || seen[i]++ || pagent_result_outcome(r) != PAGENT_OUTCOME_OK ||
          strcmp(pagent_result_answer(r), want) != 0)
        failures[t]++;
      pagent_result_free(r);
    }
    if (s != PAGENT_DONE) failures[t]++;
    pagent_batch_free(b);
  } else {
    pagent_results *res = NULL;
    if (pagent_execute(ex, qs, PER_THREAD, &res) != PAGENT_OK) failures[t]++;
    for (size_t i = 0; i < pagent_results_len(res); i++) {
      const pagent_result *r = NULL;
      pagent_results_get(res, i, &r);
      snprintf(want, sizeof want, "Agent %zu answer for '%s'", i, texts[i]);
      if (seen[i]++ || strcmp(pagent_result_answer(r), want) != 0) failures[t]++;
    }
    pagent_results_free(res);
  }
  for (int i = 0; i < PER_THREAD; i++) {
    if (seen[i] != 1) failures[t]++;
    free(texts[i]);
  }
  return NULL;
}

int main(void) {
  pagent_mock_options o;
  pagent_mock_options_init(&o);
  o.latency_us = 2000;
  o.jitter_us = 1500;
  pagent_agent *agent = NULL;
  EXPECT_STATUS(pagent_agent_mock(&o, &agent), PAGENT_OK);
  pagent_config *cfg = pagent_config_new();
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, 64), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_stream_buffer(cfg, 8), PAGENT_OK);
  EXPECT_STATUS(pagent_executor_new(cfg, agent, &ex), PAGENT_OK);
  pagent_config_free(cfg);
  pagent_agent_free(agent);

  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, worker, (void *)(size_t)t);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < THREADS; t++) {
    if (failures[t]) fprintf(stderr, "thread %d: %d problems\n", t, failures[t]);
    EXPECT(failures[t] == 0);
  }
  pagent_metrics m;
  EXPECT_STATUS(pagent_executor_metrics(ex, &m), PAGENT_OK);
  EXPECT(m.total_count == THREADS * PER_THREAD);
  EXPECT(m.successful_count == THREADS * PER_THREAD);
  pagent_executor_free(ex);
  EXPECT_STATUS(pagent_shutdown(2000), PAGENT_OK);
  return check_report("threads");
}
