/*
 * shard.c: one shard of a large batch, the way a job runner runs it — a Kubernetes
 * Indexed Job starts one pod per index, and a pod that dies is started again. Each shard
 * keeps a journal (on a volume that outlives the pod), so a restarted shard replays what
 * it already paid for and asks only the rest; all shards can share one provider budget
 * kept in Redis. See docs/scale-out.md.
 *
 * Environment:
 *   JOB_COMPLETION_INDEX   this shard, from 0 (Kubernetes sets it for Indexed Jobs) [0]
 *   SHARD_COUNT            how many shards (the Job's `completions`) [1]
 *   SHARD_QUESTIONS        a file of questions, one per line [1,000 generated ones]
 *   SHARD_JOURNAL_DIR      where shard journals live: journal-<index>.sqlite [.]
 *   PAGENT_REDIS_URL       share PAGENT_RPM requests per minute [600] among all shards
 *                          through Redis (key "parallel-agents-example") [no budget]
 *   OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL   a real server (see openai.c);
 *                          else PAGENT_TEST_LLM_URL (mock-llm); else the mock agent.
 * Question i (0-based line) belongs to shard i % SHARD_COUNT and has the id "q<i>".
 * Output: one line per question of this shard, `id <TAB> outcome <TAB> answer-or-error`.
 *
 * Under `make test` (PAGENT_TEST_LLM_URL set, SHARD_JOURNAL_DIR unset) it checks itself:
 * shard 1 of 3 over 300 questions, run twice on one journal in a temporary directory;
 * the second run must replay every answer without asking again.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "example.h"

#define GENERATED 1000
#define SELF_TEST_QUESTIONS 300

/* A number from the environment, or `fallback` when unset; exits on garbage. */
static unsigned long env_number(const char *name, unsigned long fallback) {
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return fallback;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    EXPECT(*end == '\0', "%s=%s is not a number", name, v);
    return n;
}

/* Questions: the lines of `path`, or `generated` made-up ones. Caller frees both. */
static size_t load_questions(const char *path, size_t generated, char ***out) {
    size_t n = 0, cap = 64;
    char **qs = malloc(cap * sizeof *qs);
    EXPECT(qs != NULL, "out of memory");
    FILE *f = path ? fopen(path, "r") : NULL;
    EXPECT(path == NULL || f != NULL, "cannot open %s", path);
    char *line = NULL;
    size_t len = 0;
    for (;;) {
        if (n == cap) {
            cap *= 2;
            qs = realloc(qs, cap * sizeof *qs);
            EXPECT(qs != NULL, "out of memory");
        }
        if (f) {
            ssize_t got = getline(&line, &len, f);
            if (got < 0)
                break;
            line[strcspn(line, "\r\n")] = '\0';
            qs[n] = strdup(line);
        } else {
            if (n == generated)
                break;
            char buf[64];
            snprintf(buf, sizeof buf, "What is %zu squared?", n);
            qs[n] = strdup(buf);
        }
        EXPECT(qs[n] != NULL, "out of memory");
        n++;
    }
    free(line);
    if (f)
        fclose(f);
    *out = qs;
    return n;
}

static const char *outcome_name(pagent_outcome o) {
    switch (o) {
    case PAGENT_OUTCOME_OK: return "ok";
    case PAGENT_OUTCOME_FAILED: return "failed";
    case PAGENT_OUTCOME_TIMED_OUT: return "timed_out";
    case PAGENT_OUTCOME_CANCELLED: return "cancelled";
    }
    return "unknown";
}

/* The agent: a real server, mock-llm, or the mock. Caller frees it. */
static pagent_agent *make_agent(void) {
    const char *real = getenv("OPENAI_BASE_URL");
    const char *test = getenv("PAGENT_TEST_LLM_URL");
    pagent_agent *agent = NULL;
    if (real || test) {
        pagent_openai_options *o = pagent_openai_options_new();
        EXPECT(o != NULL, "pagent_openai_options_new returned NULL");
        const char *model = real && getenv("OPENAI_MODEL") ? getenv("OPENAI_MODEL") : "mock";
        CHECK(pagent_openai_options_set_base_url(o, real ? real : test));
        CHECK(pagent_openai_options_set_model(o, real ? model : "mock"));
        CHECK(pagent_openai_options_set_api_key_env(o, real ? "OPENAI_API_KEY" : ""));
        CHECK(pagent_agent_openai(o, &agent));
        pagent_openai_options_free(o);
    } else {
        pagent_mock_options mock;
        pagent_mock_options_init(&mock);
        mock.latency_us = 1000;
        CHECK(pagent_agent_mock(&mock, &agent));
    }
    return agent;
}

/*
 * Runs shard `index` of `count` over `qs` with a journal at `journal`; prints a line
 * per result unless `quiet`. Returns how many results were replayed from the journal;
 * `*ok` counts the answered ones.
 */
static size_t run_shard(char **qs, size_t n, size_t index, size_t count, const char *journal,
                        bool quiet, size_t *ok) {
    size_t mine = 0;
    const char **ids = malloc((n / count + 1) * sizeof *ids);
    const char **questions = malloc((n / count + 1) * sizeof *questions);
    char *id_buf = malloc((n / count + 1) * 24);
    EXPECT(ids && questions && id_buf, "out of memory");
    for (size_t i = index; i < n; i += count) {
        char *id = id_buf + mine * 24;
        snprintf(id, 24, "q%zu", i);
        ids[mine] = id;
        questions[mine] = qs[i];
        mine++;
    }

    pagent_config *config = example_config(64, 60000);
    CHECK(pagent_config_set_max_retries(config, 2));
    CHECK(pagent_config_set_journal(config, journal));
    const char *redis = getenv("PAGENT_REDIS_URL");
    if (redis && *redis) {
        pagent_rate_limiter *rl = NULL;
        double rpm = (double)env_number("PAGENT_RPM", 600);
        /* One budget for every shard that names this key; tokens: none (0). */
        CHECK(pagent_rate_limiter_redis(redis, "parallel-agents-example", rpm, 0, &rl));
        CHECK(pagent_config_set_shared_rate_limiter(config, rl));
        pagent_rate_limiter_free(rl); /* the config keeps its reference */
    }
    pagent_agent *agent = make_agent();
    pagent_executor *exec = NULL;
    CHECK(pagent_executor_new(config, agent, &exec));
    pagent_config_free(config);
    pagent_agent_free(agent);

    pagent_results *rs = NULL;
    CHECK(pagent_execute_ids(exec, ids, questions, mine, &rs));
    size_t replayed = 0;
    *ok = 0;
    for (size_t i = 0; i < pagent_results_len(rs); i++) {
        const pagent_result *r = NULL;
        CHECK(pagent_results_get(rs, i, &r));
        bool answered = pagent_result_outcome(r) == PAGENT_OUTCOME_OK;
        *ok += answered;
        replayed += pagent_result_replayed(r);
        if (!quiet)
            printf("%s\t%s\t%s\n", pagent_result_id(r),
                   outcome_name(pagent_result_outcome(r)),
                   answered ? pagent_result_answer(r) : pagent_result_error(r));
    }
    EXPECT(pagent_results_len(rs) == mine, "%zu results for %zu questions",
           pagent_results_len(rs), mine);
    pagent_results_free(rs);
    pagent_executor_free(exec);
    free(id_buf);
    free(ids);
    free(questions);
    return replayed;
}

int main(void) {
    bool self_test = getenv("PAGENT_TEST_LLM_URL") && !getenv("OPENAI_BASE_URL") &&
                     !getenv("SHARD_JOURNAL_DIR");
    size_t index = self_test ? 1 : env_number("JOB_COMPLETION_INDEX", 0);
    size_t count = self_test ? 3 : env_number("SHARD_COUNT", 1);
    EXPECT(count >= 1 && index < count, "shard %zu of %zu", index, count);

    char **qs = NULL;
    size_t n = load_questions(self_test ? NULL : getenv("SHARD_QUESTIONS"),
                              self_test ? SELF_TEST_QUESTIONS : GENERATED, &qs);
    char dir[64] = ".";
    if (self_test) {
        strcpy(dir, "/tmp/pagent-shard-XXXXXX");
        EXPECT(mkdtemp(dir) != NULL, "mkdtemp failed");
    } else if (getenv("SHARD_JOURNAL_DIR")) {
        snprintf(dir, sizeof dir, "%s", getenv("SHARD_JOURNAL_DIR"));
    }
    char journal[128];
    snprintf(journal, sizeof journal, "%s/journal-%zu.sqlite", dir, index);

    size_t ok = 0;
    size_t replayed = run_shard(qs, n, index, count, journal, self_test, &ok);
    if (self_test) {
        size_t mine = SELF_TEST_QUESTIONS / 3;
        EXPECT(ok == mine && replayed == 0, "first run: %zu ok, %zu replayed", ok, replayed);
        /* The pod is started again: everything comes back from the journal. */
        replayed = run_shard(qs, n, index, count, journal, true, &ok);
        EXPECT(ok == mine && replayed == mine, "rerun: %zu ok, %zu replayed", ok, replayed);
        printf("shard %zu of %zu: %zu answered, then all %zu replayed from %s\n", index, count,
               mine, replayed, journal);
        unlink(journal);
        char side[160];
        snprintf(side, sizeof side, "%s-wal", journal);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", journal);
        unlink(side);
        EXPECT(rmdir(dir) == 0, "could not remove %s", dir);
    } else {
        fprintf(stderr, "shard %zu of %zu: %zu answered, %zu replayed from %s\n", index, count,
                ok, replayed, journal);
    }
    for (size_t i = 0; i < n; i++)
        free(qs[i]);
    free(qs);
    return 0;
}
