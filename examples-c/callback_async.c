/*
 * callback_async.c: a completion-based agent. The library calls start_work() on one of
 * its worker threads; it must not block, so it copies the question onto the host's own
 * job queue and returns. A small pthread pool of the host's answers the jobs later and
 * completes each call with pagent_pending_complete (or fails it with
 * pagent_pending_fail). Many calls are in flight with only three host threads.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "example.h"

#define N_WORKERS 3
#define N_QUESTIONS 30

struct job {
    struct job *next;
    char *question; /* our own copy: the library's string dies when start_work returns */
    size_t agent_id;
    pagent_pending *pending;
};

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct job *head, *tail;
    bool stopping;
    pthread_t threads[N_WORKERS];
    atomic_int started, completed, failed, stale_checks, freed;
};

static char *copy_string(const char *s) {
    size_t len = strlen(s) + 1;
    char *c = malloc(len);
    EXPECT(c != NULL, "out of memory");
    return memcpy(c, s, len);
}

/* The agent: runs on a library thread; enqueue and return at once. */
static void start_work(void *user_data, const char *question, size_t agent_id,
                       pagent_pending *pending) {
    struct pool *pool = user_data;
    struct job *job = malloc(sizeof *job);
    EXPECT(job != NULL, "out of memory");
    job->next = NULL;
    job->question = copy_string(question);
    job->agent_id = agent_id;
    job->pending = pending;
    pthread_mutex_lock(&pool->lock);
    if (pool->tail) {
        pool->tail->next = job;
    } else {
        pool->head = job;
    }
    pool->tail = job;
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    atomic_fetch_add(&pool->started, 1);
}

static void release_pool(void *user_data) {
    struct pool *pool = user_data;
    atomic_fetch_add(&pool->freed, 1);
}

/* A host worker thread: takes jobs, "thinks", completes the pending call. */
static void *worker(void *arg) {
    struct pool *pool = arg;
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (!pool->head && !pool->stopping) {
            pthread_cond_wait(&pool->wake, &pool->lock);
        }
        struct job *job = pool->head;
        if (!job) { /* stopping and nothing left */
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        pool->head = job->next;
        if (!pool->head) {
            pool->tail = NULL;
        }
        pthread_mutex_unlock(&pool->lock);

        nanosleep(&(struct timespec){.tv_nsec = (long)(1 + job->agent_id % 7) * 1000000L}, NULL);
        pagent_status st;
        if (strncmp(job->question, "fail", 4) == 0) {
            st = pagent_pending_fail(job->pending, "the host refused this one", false);
            atomic_fetch_add(&pool->failed, 1);
        } else {
            char answer[256];
            snprintf(answer, sizeof answer, "async answer %zu to \"%s\"", job->agent_id,
                     job->question);
            st = pagent_pending_complete(job->pending, answer);
            atomic_fetch_add(&pool->completed, 1);
        }
        EXPECT(st == PAGENT_OK, "completing a live call: %s", pagent_status_str(st));
        /* A token is not memory: completing it twice is harmless and says so. */
        st = pagent_pending_complete(job->pending, "second answer");
        EXPECT(st == PAGENT_ERR_STALE, "second completion is stale, got %s",
               pagent_status_str(st));
        atomic_fetch_add(&pool->stale_checks, 1);
        free(job->question);
        free(job);
    }
}

static struct pool pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

int main(void) {
    for (int i = 0; i < N_WORKERS; i++) {
        EXPECT(pthread_create(&pool.threads[i], NULL, worker, &pool) == 0, "pthread_create");
    }

    char texts[N_QUESTIONS][32];
    const char *questions[N_QUESTIONS];
    for (size_t i = 0; i < N_QUESTIONS; i++) {
        snprintf(texts[i], sizeof texts[i], i % 5 == 4 ? "fail %zu" : "question %zu", i);
        questions[i] = texts[i];
    }

    pagent_config *config = example_config(16, 30000);
    pagent_agent *agent = NULL;
    CHECK(pagent_agent_callback_async(start_work, &pool, release_pool, &agent));
    pagent_executor *exec = NULL;
    CHECK(pagent_executor_new(config, agent, &exec));
    pagent_config_free(config);
    pagent_agent_free(agent);

    pagent_batch *batch = NULL;
    CHECK(pagent_submit(exec, questions, N_QUESTIONS, &batch));
    pagent_results *results = NULL;
    CHECK(pagent_batch_wait(batch, -1, &results));
    EXPECT(pagent_results_len(results) == N_QUESTIONS, "%zu results",
           pagent_results_len(results));
    size_t ok = 0, failed = 0;
    for (size_t i = 0; i < N_QUESTIONS; i++) {
        const pagent_result *r = NULL;
        CHECK(pagent_results_get(results, i, &r));
        EXPECT(pagent_result_question_index(r) == i, "question order");
        if (i % 5 == 4) {
            EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_FAILED, "%s fails", questions[i]);
            EXPECT(strstr(pagent_result_error(r), "the host refused this one") != NULL,
                   "host message kept: %s", pagent_result_error(r));
            failed++;
        } else {
            char expected[256];
            snprintf(expected, sizeof expected, "async answer %zu to \"%s\"",
                     pagent_result_agent_id(r), questions[i]);
            EXPECT(pagent_result_outcome(r) == PAGENT_OUTCOME_OK, "%s: %s", questions[i],
                   pagent_result_error(r));
            EXPECT(strcmp(pagent_result_answer(r), expected) == 0, "answer %s",
                   pagent_result_answer(r));
            ok++;
        }
        printf("%-12s -> %s\n", questions[i],
               pagent_result_outcome(r) == PAGENT_OUTCOME_OK ? pagent_result_answer(r)
                                                             : pagent_result_error(r));
    }
    pagent_metrics m;
    CHECK(pagent_results_metrics(results, &m));
    EXPECT(m.successful_count == ok && m.failed_count == failed, "metrics %llu ok %llu failed",
           (unsigned long long)m.successful_count, (unsigned long long)m.failed_count);
    printf("%zu answered, %zu failed by %d host threads in %.1f ms\n", ok, failed, N_WORKERS,
           m.total_duration_us / 1000.0);
    pagent_results_free(results);
    pagent_batch_free(batch);
    pagent_executor_free(exec);

    for (int i = 0; i < 200 && atomic_load(&pool.freed) == 0; i++) {
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    EXPECT(atomic_load(&pool.freed) == 1, "free_fn once, got %d", atomic_load(&pool.freed));
    CHECK(pagent_shutdown(1000));

    /* Stop the host pool: every job was taken, since every call was completed. */
    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < N_WORKERS; i++) {
        pthread_join(pool.threads[i], NULL);
    }
    EXPECT(atomic_load(&pool.started) == N_QUESTIONS, "%d calls started",
           atomic_load(&pool.started));
    EXPECT(atomic_load(&pool.stale_checks) == N_QUESTIONS, "every token went stale once done");
    EXPECT(atomic_load(&pool.freed) == 1, "free_fn exactly once");
    printf("callback_async: OK\n");
    return 0;
}
