/* A crashed host resumes from its journal and pays for nothing twice. A child host runs
 * 10,000 questions (each with an id) against the mock-llm test server with a journal;
 * the parent kills it with SIGKILL at random moments, several times, then lets a last
 * run finish. Checks: across all runs no id is answered fresh twice (nothing paid for
 * twice), the last run hands back every id exactly once, the journal holds every id
 * exactly once, and mock-llm saw at most N + (calls in flight at each kill) requests
 * (no retries are configured); and while a child holds the journal, the parent's
 * pagent_journal_open gets PAGENT_ERR_JOURNAL_LOCKED. Needs PAGENT_TEST_LLM_URL (set by `make test`); skips
 * without it. The child is exec'd, so it runs outside valgrind; the parent reads the
 * journal back through the library after every child is gone. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define N 10000
#define CONCURRENCY 64
#define KILLS 4

/* The child: runs the batch with the journal, appending "N id" (fresh) or "R id"
 * (replayed) to `log_path` for each result as it is handed out. */
static int child(const char *url, const char *journal, const char *log_path) {
  int log = open(log_path, O_WRONLY | O_APPEND | O_CREAT, 0600);
  if (log < 0) return 3;
  pagent_openai_options *o = pagent_openai_options_new();
  pagent_agent *agent = NULL;
  pagent_config *cfg = pagent_config_new();
  pagent_executor *ex = NULL;
  if (pagent_openai_options_set_base_url(o, url) != PAGENT_OK ||
      pagent_openai_options_set_model(o, "mock") != PAGENT_OK ||
      pagent_openai_options_set_api_key_env(o, "") != PAGENT_OK ||
      pagent_agent_openai(o, &agent) != PAGENT_OK ||
      pagent_config_set_max_concurrency(cfg, CONCURRENCY) != PAGENT_OK ||
      pagent_config_set_journal(cfg, journal) != PAGENT_OK ||
      pagent_executor_new(cfg, agent, &ex) != PAGENT_OK) {
    fprintf(stderr, "child setup: %s\n", pagent_last_error());
    return 4;
  }
  pagent_openai_options_free(o);
  pagent_agent_free(agent);
  pagent_config_free(cfg);
  /* The executor holds the journal now: tell the parent. */
  char ready[160];
  snprintf(ready, sizeof ready, "%s.ready", log_path);
  int fd = open(ready, O_WRONLY | O_CREAT, 0600);
  if (fd >= 0) close(fd);
  static char ids[N][24], qs[N][48];
  static const char *idp[N], *qp[N];
  for (int i = 0; i < N; i++) {
    snprintf(ids[i], sizeof ids[i], "q-%d", i);
    snprintf(qs[i], sizeof qs[i], "What is %d + %d?", i, i);
    idp[i] = ids[i];
    qp[i] = qs[i];
  }
  pagent_batch *b = NULL;
  if (pagent_submit_ids(ex, idp, qp, N, &b) != PAGENT_OK) {
    fprintf(stderr, "child submit: %s\n", pagent_last_error());
    return 5;
  }
  pagent_result *r = NULL;
  int bad = 0;
  while (pagent_batch_next(b, -1, &r) == PAGENT_OK) {
    char line[64];
    int len = snprintf(line, sizeof line, "%c %s\n", pagent_result_replayed(r) ? 'R' : 'N',
                       pagent_result_id(r));
    if (pagent_result_outcome(r) != PAGENT_OUTCOME_OK) {
      fprintf(stderr, "child: %s: %s\n", pagent_result_id(r), pagent_result_error(r));
      bad++;
    }
    if (write(log, line, (size_t)len) != len) bad++;
    pagent_result_free(r);
  }
  pagent_batch_free(b);
  pagent_executor_free(ex);
  pagent_shutdown(5000);
  close(log);
  return bad ? 6 : 0;
}

/* mock-llm's request count, from GET /stats; -1 if unreachable. */
static long requests_seen(const char *url) {
  int port = 0;
  if (sscanf(url, "http://127.0.0.1:%d", &port) != 1) return -1;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
    close(s);
    return -1;
  }
  const char *req = "GET /stats?log=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (write(s, req, strlen(req)) < 0) {
    close(s);
    return -1;
  }
  static char buf[1 << 20];
  size_t got = 0;
  ssize_t k;
  while (got < sizeof buf - 1 && (k = read(s, buf + got, sizeof buf - 1 - got)) > 0)
    got += (size_t)k;
  close(s);
  buf[got] = '\0';
  const char *p = strstr(buf, "\"requests\":");
  return p ? strtol(p + 11, NULL, 10) : -1;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "child") == 0) return child(argv[2], argv[3], argv[4]);
  const char *url = getenv("PAGENT_TEST_LLM_URL");
  if (url == NULL || url[0] == '\0') {
    printf("journal_kill: skipped (no PAGENT_TEST_LLM_URL)\n");
    return 0;
  }
  char dir[] = "/tmp/pagent-journal-kill-XXXXXX";
  if (mkdtemp(dir) == NULL) return 2;
  char journal[128], log_path[128];
  snprintf(journal, sizeof journal, "%s/j.db", dir);
  snprintf(log_path, sizeof log_path, "%s/received.log", dir);
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  srand(seed);
  printf("journal_kill: seed %u, %s\n", seed, dir);
  long before = requests_seen(url);
  EXPECT(before >= 0);

  int killed = 0;
  for (int run = 0; run <= KILLS; run++) {
    pid_t pid = fork();
    if (pid == 0) {
      execl(argv[0], argv[0], "child", url, journal, log_path, (char *)NULL);
      _exit(127);
    }
    int status = 0;
    if (run == 0) {
      /* A second process on the journal is refused while this child holds it. */
      char ready[160];
      snprintf(ready, sizeof ready, "%s.ready", log_path);
      for (int i = 0; i < 2000 && access(ready, F_OK) != 0; i++) usleep(5000);
      EXPECT(access(ready, F_OK) == 0);
      pagent_journal *held = NULL;
      EXPECT_STATUS(pagent_journal_open(journal, &held), PAGENT_ERR_JOURNAL_LOCKED);
      EXPECT_ERROR_MENTIONS("held by another");
      EXPECT(held == NULL);
      pagent_journal_free(held);
    }
    if (run < KILLS) {
      /* A random moment: 50 to 800 ms into the run (it may finish first). */
      struct timespec t = {0, (long)(50 + rand() % 750) * 1000000L};
      nanosleep(&t, NULL);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      if (WIFSIGNALED(status)) killed++;
      else EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    } else {
      waitpid(pid, &status, 0);
      EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
  }
  printf("journal_kill: %d of %d runs killed mid-way\n", killed, KILLS);

  /* The log: fresh answers at most once per id, across every run. */
  static int fresh[N], in_journal[N];
  FILE *f = fopen(log_path, "r");
  EXPECT(f != NULL);
  char kind, id[32];
  long lines = 0;
  while (f && fscanf(f, " %c %31s", &kind, id) == 2) {
    int i = atoi(id + 2);
    EXPECT(i >= 0 && i < N);
    if (i < 0 || i >= N) continue;
    if (kind == 'N') fresh[i]++;
    lines++;
  }
  if (f) fclose(f);
  int twice = 0;
  for (int i = 0; i < N; i++) twice += fresh[i] > 1;
  EXPECT(twice == 0);

  /* The journal: every id exactly once, each an answer. */
  pagent_journal *j = NULL;
  EXPECT_STATUS(pagent_journal_open(journal, &j), PAGENT_OK);
  EXPECT(pagent_journal_remaining(j) == N);
  pagent_result *r = NULL;
  size_t stored = 0;
  while (pagent_journal_next(j, &r) == PAGENT_OK) {
    int i = atoi(pagent_result_id(r) + 2);
    EXPECT(i >= 0 && i < N && in_journal[i] == 0);
    if (i >= 0 && i < N) in_journal[i]++;
    EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_OK);
    EXPECT(pagent_result_replayed(r));
    stored++;
    pagent_result_free(r);
  }
  pagent_journal_free(j);
  EXPECT(stored == N);

  /* Requests: N, plus at most the calls in flight at each kill: a call keeps its slot
   * until its result is durable, so no more than CONCURRENCY are paid and not stored. */
  long after = requests_seen(url);
  long spent = after - before;
  printf("journal_kill: %ld log lines, %ld requests for %d questions (bound %d)\n", lines,
         spent, N, N + KILLS * CONCURRENCY);
  EXPECT(spent >= N && spent <= N + KILLS * CONCURRENCY);

  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (check_failures == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  pagent_shutdown(1000);
  return check_report("journal_kill");
}
