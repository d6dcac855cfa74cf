/* Fault injection through the C ABI: the mock fails, hangs, panics and has a slow tail,
 * with retries and timeouts on. Every question index comes back exactly once, the
 * counts add up, nothing deadlocks, and (under valgrind) nothing leaks. */
#include "check.h"

#define N 400

static void run(double failure, double hang, double panic, uint32_t retries, int hedge) {
  pagent_mock_options o;
  pagent_mock_options_init(&o);
  o.latency_us = 2000;
  o.jitter_us = 1900; /* a spread of latencies */
  o.failure_rate = failure;
  o.hang_rate = hang;
  o.panic_rate = panic;
  o.seed = 7;
  pagent_agent *agent = NULL;
  EXPECT_STATUS(pagent_agent_mock(&o, &agent), PAGENT_OK);
  pagent_config *cfg = pagent_config_new();
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, 32), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_agent_timeout_ms(cfg, 1500), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_max_retries(cfg, retries), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_retry_backoff_ms(cfg, 1, 5), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_retry_timeouts(cfg, retries > 0), PAGENT_OK);
  if (hedge) EXPECT_STATUS(pagent_config_set_hedge(cfg, 0, true), PAGENT_OK);
  pagent_executor *ex = NULL;
  EXPECT_STATUS(pagent_executor_new(cfg, agent, &ex), PAGENT_OK);
  pagent_config_free(cfg);
  pagent_agent_free(agent);

  char *texts[N];
  const char *qs[N];
  for (int i = 0; i < N; i++) {
    texts[i] = malloc(24);
    snprintf(texts[i], 24, "question %d", i);
    qs[i] = texts[i];
  }
  pagent_batch *batch = NULL;
  EXPECT_STATUS(pagent_submit(ex, qs, N, &batch), PAGENT_OK);
  unsigned char seen[N] = {0};
  uint64_t counts[4] = {0};
  uint64_t attempts = 0;
  pagent_result *r = NULL;
  pagent_status s;
  while ((s = pagent_batch_next(batch, -1, &r)) == PAGENT_OK) {
    size_t i = pagent_result_question_index(r);
    EXPECT(i < N);
    if (i < N) seen[i]++;
    pagent_outcome oc = pagent_result_outcome(r);
    EXPECT(oc <= PAGENT_OUTCOME_CANCELLED);
    counts[oc]++;
    attempts += pagent_result_attempts(r);
    EXPECT((oc == PAGENT_OUTCOME_OK) == (pagent_result_answer(r) != NULL));
    EXPECT((oc == PAGENT_OUTCOME_OK) == (pagent_result_error(r) == NULL));
    EXPECT(pagent_result_attempts(r) >= 1 && pagent_result_attempts(r) <= retries + 1);
    pagent_result_free(r);
  }
  EXPECT(s == PAGENT_DONE);
  for (int i = 0; i < N; i++) EXPECT(seen[i] == 1);
  pagent_metrics m;
  EXPECT_STATUS(pagent_batch_metrics(batch, &m), PAGENT_OK);
  EXPECT(m.total_count == N);
  EXPECT(m.successful_count == counts[0] && m.failed_count == counts[1]);
  EXPECT(m.timed_out_count == counts[2] && m.cancelled_count == counts[3]);
  EXPECT(m.successful_count + m.failed_count + m.timed_out_count + m.cancelled_count == N);
  EXPECT(m.attempts == attempts);
  EXPECT(m.min_duration_us <= m.p50_duration_us && m.p50_duration_us <= m.p95_duration_us);
  EXPECT(m.p95_duration_us <= m.p99_duration_us && m.p99_duration_us <= m.max_duration_us);
  EXPECT(m.min_duration_us <= m.avg_duration_us && m.avg_duration_us <= m.max_duration_us);
  if (failure + hang + panic > 0 && retries == 0) EXPECT(counts[0] < N);
  if (failure + hang + panic == 0) EXPECT(counts[0] == N);
  printf("faults f=%.2f h=%.2f p=%.2f retries=%u hedge=%d: ok=%llu failed=%llu timed_out=%llu "
         "attempts=%llu hedged=%llu\n",
         failure, hang, panic, retries, hedge, (unsigned long long)counts[0],
         (unsigned long long)counts[1], (unsigned long long)counts[2],
         (unsigned long long)attempts, (unsigned long long)m.hedged_count);
  pagent_batch_free(batch);
  pagent_executor_free(ex);
  for (int i = 0; i < N; i++) free(texts[i]);
}

int main(void) {
  run(0.0, 0.0, 0.0, 0, 0);
  run(0.2, 0.05, 0.05, 0, 0);
  run(0.2, 0.05, 0.05, 3, 0);
  run(0.1, 0.02, 0.0, 2, 1);
  EXPECT_STATUS(pagent_shutdown(2000), PAGENT_OK);
  return check_report("faults");
}
