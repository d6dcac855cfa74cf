/* Nothing lost, nothing used after free, no blocking poll, no work after cancel — the
 * way a careless host meets them, with threads:
 *   - pagent_shutdown while host threads wait on batches, run pagent_execute and a
 *     consensus round: every index still comes back exactly once, through every way of
 *     asking (next with -1, 0 and N ms, wait with -1 and N ms), after the shutdown too;
 *   - pagent_executor_free / pagent_batch_free while another thread is inside a call on
 *     the handle (valgrind and ASan see no invalid read);
 *   - pagent_batch_next(b, 0) never blocks, also while another thread waits on the batch
 *     and from inside an agent callback polling its own batch;
 *   - a cancelled and freed batch of a blocking callback agent starts no queued call, and
 *     its callbacks never run on more threads than max_concurrency;
 *   - hedged duplicates go through the rate limiter.
 * Shutdown is final for a process, so each scenario runs in a child forked before the
 * library starts. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pagent_executor *mock_executor(uint64_t latency_us, size_t concurrency) {
  pagent_mock_options o;
  pagent_mock_options_init(&o);
  o.latency_us = latency_us;
  o.jitter_us = 0;
  pagent_agent *agent = NULL;
  pagent_config *cfg = pagent_config_new();
  pagent_executor *ex = NULL;
  EXPECT_STATUS(pagent_agent_mock(&o, &agent), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, concurrency), PAGENT_OK);
  EXPECT_STATUS(pagent_executor_new(cfg, agent, &ex), PAGENT_OK);
  pagent_config_free(cfg);
  pagent_agent_free(agent);
  return ex;
}

/* n questions "q0".."q{n-1}"; free with free_questions. */
static const char **make_questions(size_t n) {
  const char **qs = malloc(n * sizeof *qs);
  for (size_t i = 0; i < n; i++) {
    char *q = malloc(24);
    snprintf(q, 24, "q%zu", i);
    qs[i] = q;
  }
  return qs;
}

static void free_questions(const char **qs, size_t n) {
  for (size_t i = 0; i < n; i++) free((void *)qs[i]);
  free(qs);
}

/* Reads a batch to the end with `timeout_ms` per call; counts each index. Returns the
 * number of problems (an index seen twice or never, a status other than OK / DONE /
 * WAIT_TIMEOUT). */
struct reader {
  pagent_batch *batch;
  size_t n;
  int64_t timeout_ms;
  int problems;
  size_t cancelled;
  size_t taken;
};

static void *read_all(void *arg) {
  struct reader *rd = arg;
  unsigned char *seen = calloc(rd->n, 1);
  size_t taken = 0;
  for (;;) {
    pagent_result *r = NULL;
    pagent_status s = pagent_batch_next(rd->batch, rd->timeout_ms, &r);
    if (s == PAGENT_OK) {
      size_t i = pagent_result_question_index(r);
      if (i >= rd->n || seen[i]++) rd->problems++;
      if (pagent_result_outcome(r) == PAGENT_OUTCOME_CANCELLED) rd->cancelled++;
      taken++;
      pagent_result_free(r);
    } else if (s == PAGENT_DONE) {
      break;
    } else if (s == PAGENT_WAIT_TIMEOUT) {
      if (rd->timeout_ms == 0) usleep(1000);
    } else {
      fprintf(stderr, "read_all(timeout %lld): %s: %s\n", (long long)rd->timeout_ms,
              pagent_status_str(s), pagent_last_error());
      rd->problems++;
      break;
    }
  }
  rd->taken = taken;
  free(seen);
  return NULL;
}

struct executing {
  pagent_executor *ex;
  const char **qs;
  size_t n;
  pagent_status status;
  size_t len;
  int problems;
};

static void *execute_all(void *arg) {
  struct executing *e = arg;
  pagent_results *rs = NULL;
  e->status = pagent_execute(e->ex, e->qs, e->n, &rs);
  if (e->status == PAGENT_OK) {
    e->len = pagent_results_len(rs);
    for (size_t i = 0; i < e->len; i++) {
      const pagent_result *r = NULL;
      if (pagent_results_get(rs, i, &r) != PAGENT_OK || pagent_result_question_index(r) != i)
        e->problems++;
    }
  } else {
    fprintf(stderr, "pagent_execute: %s: %s\n", pagent_status_str(e->status), pagent_last_error());
  }
  pagent_results_free(rs);
  return NULL;
}

struct voting {
  pagent_executor *ex;
  size_t n;
  pagent_status status;
  size_t len;
};

static void *vote(void *arg) {
  struct voting *v = arg;
  pagent_consensus *c = NULL;
  v->status = pagent_run_consensus(v->ex, "q", v->n, &c);
  if (v->status == PAGENT_OK) v->len = pagent_results_len(pagent_consensus_results(c));
  pagent_consensus_free(c);
  return NULL;
}

/* A completion-based agent for timing: its start function counts the call (into the
 * atomic_int that user_data points to) and records when it started; a call is completed
 * after `async_delay_us` by a thread of its own, or never when that is 0 (it then ends
 * only by timeout or cancellation). */
#define START_LOG 64
static double start_times[START_LOG];
static atomic_int logged_starts;
static useconds_t async_delay_us;

struct completion {
  pagent_pending *pending;
  useconds_t delay_us;
};

static void *complete_later(void *arg) {
  struct completion *c = arg;
  usleep(c->delay_us);
  pagent_pending_complete(c->pending, "done"); /* STALE if the call has gone: harmless */
  free(c);
  return NULL;
}

static void counting_start(void *user_data, const char *question, size_t agent_id,
                           pagent_pending *pending) {
  (void)question;
  (void)agent_id;
  atomic_fetch_add((atomic_int *)user_data, 1);
  int k = atomic_fetch_add(&logged_starts, 1);
  if (k < START_LOG) start_times[k] = now_s();
  if (async_delay_us == 0) return;
  struct completion *c = malloc(sizeof *c);
  c->pending = pending;
  c->delay_us = async_delay_us;
  pthread_t t;
  pthread_create(&t, NULL, complete_later, c);
  pthread_detach(t);
}

static pagent_executor *counting_executor(atomic_int *starts, size_t concurrency,
                                          pagent_config *cfg) {
  pagent_agent *agent = NULL;
  pagent_executor *ex = NULL;
  EXPECT_STATUS(pagent_agent_callback_async(counting_start, starts, NULL, &agent), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, concurrency), PAGENT_OK);
  EXPECT_STATUS(pagent_executor_new(cfg, agent, &ex), PAGENT_OK);
  pagent_agent_free(agent);
  return ex;
}

/* Waits up to a minute for *counter to reach `want`. */
static void wait_for(atomic_int *counter, int want) {
  for (int i = 0; i < 6000 && atomic_load(counter) < want; i++) usleep(10 * 1000);
  EXPECT(atomic_load(counter) >= want);
}

/* pagent_shutdown with 10,000 calls in flight and hosts waiting every way there is. */
static void shutdown_loses_nothing(void) {
  enum { N = 10000, M = 500 };
  pagent_executor *ex = mock_executor(60u * 1000 * 1000, N); /* calls never finish */
  const char **qs = make_questions(N);
  /* Readers that wait with -1, 0 and 50 ms; two batches read only after the shutdown. */
  int64_t timeouts[] = {-1, 0, 50};
  struct reader rd[3];
  pthread_t th[3];
  for (int k = 0; k < 3; k++) {
    rd[k] = (struct reader){NULL, k == 0 ? N : M, timeouts[k], 0, 0, 0};
    EXPECT_STATUS(pagent_submit(ex, qs, rd[k].n, &rd[k].batch), PAGENT_OK);
    pthread_create(&th[k], NULL, read_all, &rd[k]);
  }
  pagent_batch *later_next = NULL, *later_wait = NULL, *later_wait_timed = NULL;
  EXPECT_STATUS(pagent_submit(ex, qs, M, &later_next), PAGENT_OK);
  EXPECT_STATUS(pagent_submit(ex, qs, M, &later_wait), PAGENT_OK);
  EXPECT_STATUS(pagent_submit(ex, qs, M, &later_wait_timed), PAGENT_OK);
  /* pagent_execute and a consensus round on executors whose calls never end; the
   * shutdown comes once both have started calls (not before: that would be new work). */
  static atomic_int exec_starts, vote_starts;
  pagent_config *cfg = pagent_config_new();
  pagent_executor *hang_exec = counting_executor(&exec_starts, M, cfg);
  pagent_executor *hang_vote = counting_executor(&vote_starts, 50, cfg);
  pagent_config_free(cfg);
  struct executing ec = {hang_exec, qs, M, PAGENT_ERR_PANIC, 0, 0};
  struct voting vc = {hang_vote, 50, PAGENT_ERR_PANIC, 0};
  pthread_t te, tv;
  pthread_create(&te, NULL, execute_all, &ec);
  pthread_create(&tv, NULL, vote, &vc);
  wait_for(&exec_starts, 1);
  wait_for(&vote_starts, 1);

  EXPECT_STATUS(pagent_shutdown(100), PAGENT_OK);
  for (int k = 0; k < 3; k++) {
    pthread_join(th[k], NULL);
    EXPECT(rd[k].problems == 0 && rd[k].taken == rd[k].n);
    EXPECT(rd[k].cancelled == rd[k].n);
    pagent_batch_free(rd[k].batch);
  }
  pthread_join(te, NULL);
  EXPECT_STATUS(ec.status, PAGENT_OK);
  EXPECT(ec.len == M && ec.problems == 0);
  pthread_join(tv, NULL);
  EXPECT_STATUS(vc.status, PAGENT_OK);
  EXPECT(vc.len == 50);

  /* After the shutdown: a blocking next, a blocking wait and a timed wait all work. */
  struct reader after = {later_next, M, 1000, 0, 0, 0};
  read_all(&after);
  EXPECT(after.problems == 0 && after.taken == M && after.cancelled == M);
  pagent_results *rs = NULL;
  EXPECT_STATUS(pagent_batch_wait(later_wait, -1, &rs), PAGENT_OK);
  EXPECT(pagent_results_len(rs) == M);
  pagent_results_free(rs);
  EXPECT_STATUS(pagent_batch_wait(later_wait_timed, 200, &rs), PAGENT_OK);
  EXPECT(pagent_results_len(rs) == M);
  pagent_results_free(rs);
  pagent_batch_free(later_next);
  pagent_batch_free(later_wait);
  pagent_batch_free(later_wait_timed);

  /* New work is refused, with a status. */
  pagent_batch *b = NULL;
  EXPECT_STATUS(pagent_submit(ex, qs, 1, &b), PAGENT_ERR_SHUTDOWN);
  EXPECT(b == NULL);
  pagent_executor_free(ex);
  pagent_executor_free(hang_exec);
  pagent_executor_free(hang_vote);
  free_questions(qs, N);
}

struct waiting {
  pagent_batch *batch;
  size_t n;
  pagent_status status;
  size_t len;
  size_t cancelled;
};

static void *wait_all(void *arg) {
  struct waiting *w = arg;
  pagent_results *rs = NULL;
  w->status = pagent_batch_wait(w->batch, -1, &rs);
  w->len = pagent_results_len(rs);
  for (size_t i = 0; i < w->len; i++) {
    const pagent_result *r = NULL;
    if (pagent_results_get(rs, i, &r) == PAGENT_OK &&
        pagent_result_outcome(r) == PAGENT_OUTCOME_CANCELLED)
      w->cancelled++;
  }
  pagent_results_free(rs);
  return NULL;
}

/* Handles freed by one thread while another is inside a call on them. */
static void free_while_in_use(void) {
  enum { N = 200 };
  const char **qs = make_questions(N);

  pagent_executor *ex = mock_executor(20 * 1000, 20); /* about 200 ms in all */
  struct executing ec = {ex, qs, N, PAGENT_ERR_PANIC, 0, 0};
  pthread_t te;
  pthread_create(&te, NULL, execute_all, &ec);
  usleep(50 * 1000);
  pagent_executor_free(ex); /* the call on the other thread keeps its executor */
  pthread_join(te, NULL);
  EXPECT_STATUS(ec.status, PAGENT_OK);
  EXPECT(ec.len == N && ec.problems == 0);

  /* A thread inside one pagent_batch_wait while another frees the batch: that call
   * gets every result (the unfinished ones cancelled). A host may not start a new call
   * with a freed handle, so each thread makes one call here. */
  ex = mock_executor(20 * 1000, 20);
  struct waiting w = {NULL, N, PAGENT_ERR_PANIC, 0, 0};
  EXPECT_STATUS(pagent_submit(ex, qs, N, &w.batch), PAGENT_OK);
  pthread_t tw;
  pthread_create(&tw, NULL, wait_all, &w);
  usleep(50 * 1000);
  pagent_batch_free(w.batch);
  pthread_join(tw, NULL);
  EXPECT_STATUS(w.status, PAGENT_OK);
  EXPECT(w.len == N);
  EXPECT(w.cancelled > 0 && w.cancelled < N);
  pagent_executor_free(ex);
  free_questions(qs, N);
  EXPECT_STATUS(pagent_shutdown(1000), PAGENT_OK);
}

/* A callback that polls its own batch (with 0) while the host waits on it with -1. */
static pagent_batch *_Atomic polled_batch;
static atomic_int poll_problems;
static atomic_int polls;
static atomic_int polled_results;

static int32_t polling_callback(void *user_data, const char *question, size_t agent_id,
                                pagent_reply *reply) {
  (void)user_data;
  (void)question;
  (void)agent_id;
  pagent_batch *b = atomic_load(&polled_batch);
  if (b) {
    pagent_result *r = NULL;
    double t = now_s();
    pagent_status s = pagent_batch_next(b, 0, &r);
    /* Mostly the host thread is waiting on the batch and the poll finds it busy; between
     * two of the host's reads the poll may take a result itself. */
    if (s == PAGENT_OK) {
      atomic_fetch_add(&polled_results, 1);
      pagent_result_free(r);
    } else if (s != PAGENT_WAIT_TIMEOUT || r != NULL) {
      atomic_fetch_add(&poll_problems, 1);
    }
    if (now_s() - t > 1.0) atomic_fetch_add(&poll_problems, 1);
    atomic_fetch_add(&polls, 1);
  }
  usleep(20 * 1000);
  return pagent_reply_set_answer(reply, "ok") == PAGENT_OK ? PAGENT_CALLBACK_OK : PAGENT_CALLBACK_ERROR;
}

static void polls_never_block(void) {
  enum { N = 40 };
  const char **qs = make_questions(N);
  /* A host thread polls a slow batch that another thread waits on. */
  pagent_executor *ex = mock_executor(2 * 1000 * 1000, 4);
  struct reader rd = {NULL, N, -1, 0, 0, 0};
  EXPECT_STATUS(pagent_submit(ex, qs, N, &rd.batch), PAGENT_OK);
  pthread_t tr;
  pthread_create(&tr, NULL, read_all, &rd);
  usleep(100 * 1000);
  pagent_result *r = NULL;
  double t = now_s();
  EXPECT_STATUS(pagent_batch_next(rd.batch, 0, &r), PAGENT_WAIT_TIMEOUT);
  pagent_results *rs = NULL;
  EXPECT_STATUS(pagent_batch_wait(rd.batch, 0, &rs), PAGENT_WAIT_TIMEOUT);
  EXPECT(now_s() - t < 1.0); /* the first call takes 2 s */
  EXPECT_STATUS(pagent_batch_cancel(rd.batch), PAGENT_OK);
  pthread_join(tr, NULL);
  EXPECT(rd.problems == 0 && rd.taken == N);
  pagent_batch_free(rd.batch);
  pagent_executor_free(ex);

  /* Callbacks poll their own batch while the host waits on it. */
  pagent_agent *agent = NULL;
  EXPECT_STATUS(pagent_agent_callback(polling_callback, NULL, NULL, &agent), PAGENT_OK);
  pagent_config *cfg = pagent_config_new();
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, 4), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_agent_timeout_ms(cfg, 30000), PAGENT_OK);
  EXPECT_STATUS(pagent_executor_new(cfg, agent, &ex), PAGENT_OK);
  pagent_config_free(cfg);
  pagent_agent_free(agent);
  pagent_batch *b = NULL;
  EXPECT_STATUS(pagent_submit(ex, qs, N, &b), PAGENT_OK);
  atomic_store(&polled_batch, b);
  t = now_s();
  struct reader own = {b, N, -1, 0, 0, 0};
  read_all(&own);
  atomic_store(&polled_batch, NULL);
  EXPECT(own.problems == 0 && own.cancelled == 0);
  EXPECT(own.taken + (size_t)atomic_load(&polled_results) == N);
  EXPECT(atomic_load(&poll_problems) == 0);
  EXPECT(atomic_load(&polls) > 0);
  EXPECT(now_s() - t < 20.0); /* not stuck until the 30 s agent timeout */
  pagent_batch_free(b);
  pagent_executor_free(ex);
  free_questions(qs, N);
  EXPECT_STATUS(pagent_shutdown(1000), PAGENT_OK);
}

/* A blocking callback agent: how many calls started, how many run at once. */
static atomic_int started, running, most_running;

static int32_t slow_callback(void *user_data, const char *question, size_t agent_id,
                             pagent_reply *reply) {
  (void)user_data;
  (void)question;
  (void)agent_id;
  atomic_fetch_add(&started, 1);
  int now = atomic_fetch_add(&running, 1) + 1;
  int most = atomic_load(&most_running);
  while (now > most && !atomic_compare_exchange_weak(&most_running, &most, now)) {
  }
  usleep(50 * 1000);
  atomic_fetch_sub(&running, 1);
  return pagent_reply_set_answer(reply, "ok") == PAGENT_OK ? PAGENT_CALLBACK_OK : PAGENT_CALLBACK_ERROR;
}

static int threads_now(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  int n = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1) break;
  if (f) fclose(f);
  return n;
}

static void cancelled_callbacks_stop(void) {
  enum { N = 5000, C = 16 };
  const char **qs = make_questions(N);
  pagent_agent *agent = NULL;
  EXPECT_STATUS(pagent_agent_callback(slow_callback, NULL, NULL, &agent), PAGENT_OK);
  pagent_config *cfg = pagent_config_new();
  EXPECT_STATUS(pagent_set_worker_threads(2), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_max_concurrency(cfg, C), PAGENT_OK);
  /* Calls time out long before their callbacks return: the executor moves on while the
   * callbacks still run, which is where threads used to pile up. */
  EXPECT_STATUS(pagent_config_set_agent_timeout_ms(cfg, 5), PAGENT_OK);
  pagent_executor *ex = NULL;
  EXPECT_STATUS(pagent_executor_new(cfg, agent, &ex), PAGENT_OK);
  pagent_config_free(cfg);
  pagent_agent_free(agent);
  struct reader rd = {NULL, N, -1, 0, 0, 0};
  EXPECT_STATUS(pagent_submit(ex, qs, N, &rd.batch), PAGENT_OK);
  pthread_t tr;
  pthread_create(&tr, NULL, read_all, &rd);
  usleep(400 * 1000);
  int threads_mid = threads_now();
  EXPECT_STATUS(pagent_batch_cancel(rd.batch), PAGENT_OK);
  int at_cancel = atomic_load(&started);
  pthread_join(tr, NULL);
  EXPECT(rd.problems == 0 && rd.taken == N && rd.cancelled > 0);
  pagent_batch_free(rd.batch);
  pagent_executor_free(ex);
  usleep(500 * 1000);
  int after = atomic_load(&started);
  printf("callbacks: %d started at cancel, %d after; at most %d at once; %d threads\n",
         at_cancel, after, atomic_load(&most_running), threads_mid);
  /* Calls already holding a thread may still begin; nothing queued behind them does. */
  EXPECT(after - at_cancel <= C);
  EXPECT(atomic_load(&most_running) <= C);
  /* Host and reader threads + workers + the runtime's blocking threads, which run at
   * most C callbacks at once (checked above) but may number up to about twice that: the
   * pool starts a thread when none is idle at that instant, and keeps idle ones 10 s.
   * Unbounded, this was about 500. */
  EXPECT(threads_mid > 0 && threads_mid <= 2 + 2 + 2 * C + 16);
  free_questions(qs, N);
  EXPECT_STATUS(pagent_shutdown(2000), PAGENT_OK);
}

/* Hedged duplicates are agent starts too: the rate limiter paces them. Starts are timed
 * in the agent's start function, which runs as the call starts (no thread to wait for). */
static void hedges_are_rate_limited(void) {
  enum { N = 12 };
  const char **qs = make_questions(N);
  static atomic_int starts;
  /* Calls of 1.5 s: a duplicate hedged at 1 ms and paced by the limiter (12 primaries
   * take the first 600 ms of starts) still starts while its primary runs. */
  async_delay_us = 1500 * 1000;
  pagent_config *cfg = pagent_config_new();
  EXPECT_STATUS(pagent_config_set_rate_limit(cfg, 20.0, 1), PAGENT_OK);
  EXPECT_STATUS(pagent_config_set_hedge(cfg, 1, false), PAGENT_OK); /* hedge after 1 ms */
  pagent_executor *ex = counting_executor(&starts, N, cfg);
  pagent_config_free(cfg);
  double t = now_s();
  pagent_results *rs = NULL;
  EXPECT_STATUS(pagent_execute(ex, qs, N, &rs), PAGENT_OK);
  double took = now_s() - t;
  pagent_metrics m;
  EXPECT_STATUS(pagent_results_metrics(rs, &m), PAGENT_OK);
  pagent_results_free(rs);
  pagent_executor_free(ex);
  int n = atomic_load(&logged_starts);
  printf("hedging: %d agent starts for %d calls (%llu hedged) in %.3f s at 20/s\n", n, N,
         (unsigned long long)m.hedged_count, took);
  EXPECT(m.hedged_count > 0);
  EXPECT(n > N && n <= START_LOG);
  if (n > START_LOG) n = START_LOG;
  /* Start i (in time order) is due i / 20 s after the limiter's first slot (burst 1).
   * Where that first slot fell is estimated by the median of start_i - i / 20, not by the
   * first start alone: under valgrind the first call runs code not yet translated and
   * can start late, which made every later start look early. No start may come more than
   * three starts (150 ms) ahead of its slot; duplicates that skipped the limiter would
   * start 1 ms after their primary: 24 starts in 600 ms, the last ~290 ms ahead of the
   * median's schedule. */
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && start_times[j - 1] > start_times[j]; j--) {
      double x = start_times[j];
      start_times[j] = start_times[j - 1];
      start_times[j - 1] = x;
    }
  double offsets[START_LOG];
  for (int i = 0; i < n; i++) offsets[i] = start_times[i] - i / 20.0;
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && offsets[j - 1] > offsets[j]; j--) {
      double x = offsets[j];
      offsets[j] = offsets[j - 1];
      offsets[j - 1] = x;
    }
  double first_slot = offsets[n / 2];
  for (int i = 0; i < n; i++) {
    double due = first_slot + i / 20.0;
    if (start_times[i] < due - 0.150) {
      fprintf(stderr, "start %d came %.3f s before its slot\n", i, due - start_times[i]);
      EXPECT(start_times[i] >= due - 0.150);
      break;
    }
  }
  usleep(1600 * 1000); /* the completer threads of losing duplicates finish */
  free_questions(qs, N);
  EXPECT_STATUS(pagent_shutdown(2000), PAGENT_OK);
}

static int run_child(const char *name, void (*scenario)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    scenario();
    exit(check_report(name));
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "%s: child failed (status %d)\n", name, st);
    return 1;
  }
  return 0;
}

int main(void) {
  int failed = 0;
  failed += run_child("shutdown_loses_nothing", shutdown_loses_nothing);
  failed += run_child("free_while_in_use", free_while_in_use);
  failed += run_child("polls_never_block", polls_never_block);
  failed += run_child("cancelled_callbacks_stop", cancelled_callbacks_stop);
  failed += run_child("hedges_are_rate_limited", hedges_are_rate_limited);
  EXPECT(failed == 0);
  return check_report("lifetimes");
}
