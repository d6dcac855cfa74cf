/*
 * openai.c: LLM calls from C through an OpenAI-compatible chat-completions endpoint.
 *
 * Which endpoint:
 *   - OPENAI_BASE_URL set: that server (OPENAI_API_KEY sent as the key, OPENAI_MODEL
 *     or gpt-4o-mini as the model); the program prints what it got.
 *   - otherwise PAGENT_TEST_LLM_URL: the local test server, mock-llm (`make test` starts
 *     it and sets this); the program then also checks what the answers must be.
 *   - neither: prints SKIP and exits 0.
 *
 *   OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... ./build/openai
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "example.h"

#define N_QUESTIONS 12
#define N_VOTERS 5

/* Options for one agent; the caller frees them. */
static pagent_openai_options *make_options(const char *base_url, bool real, const char *model) {
    pagent_openai_options *o = pagent_openai_options_new();
    EXPECT(o != NULL, "pagent_openai_options_new returned NULL");
    CHECK(pagent_openai_options_set_base_url(o, base_url));
    CHECK(pagent_openai_options_set_model(o, model));
    /* The key is read from the environment when the agent is made, and never shown. */
    CHECK(pagent_openai_options_set_api_key_env(o, real ? "OPENAI_API_KEY" : ""));
    CHECK(pagent_openai_options_set_system_prompt(o, "Answer in at most five words."));
    CHECK(pagent_openai_options_set_user_template(o, "Question: {question}"));
    /* Fields left unset are not sent. Reasoning models (o-series) reject temperature 0
     * and want pagent_openai_options_set_max_completion_tokens instead of max_tokens. */
    CHECK(pagent_openai_options_set_temperature(o, 0.0));
    CHECK(pagent_openai_options_set_max_tokens(o, 32));
    /* Any other request fields, as one JSON object merged into the body. */
    CHECK(pagent_openai_options_set_extra_body_json(o, "{\"seed\": 7}"));
    CHECK(pagent_openai_options_add_header(o, "x-example", "openai.c"));
    CHECK(pagent_openai_options_set_request_timeout_ms(o, 30000));
    return o;
}

/* Bad values are refused with a status and a message, and the options keep their old
 * value. */
static void show_validation(void) {
    pagent_openai_options *o = pagent_openai_options_new();
    pagent_status st = pagent_openai_options_set_base_url(o, "localhost:8080");
    EXPECT(st == PAGENT_ERR_INVALID_ARG, "a URL without a scheme is refused");
    printf("refused: %s\n", pagent_last_error());
    st = pagent_openai_options_set_base_url(o, "http://user:secret@127.0.0.1:8080/v1");
    EXPECT(st == PAGENT_ERR_INVALID_ARG, "credentials in the URL are refused");
    EXPECT(strstr(pagent_last_error(), "secret") == NULL, "the message hides them");
    printf("refused: %s\n", pagent_last_error());
    st = pagent_openai_options_add_header(o, "Content-Length", "0");
    EXPECT(st == PAGENT_ERR_INVALID_ARG, "framing headers are refused");
    printf("refused: %s\n", pagent_last_error());
    st = pagent_openai_options_set_user_template(o, "no placeholder here");
    EXPECT(st == PAGENT_ERR_INVALID_ARG, "a template without {question} is refused");
    printf("refused: %s\n", pagent_last_error());
    pagent_openai_options_free(o);
}

int main(void) {
    const char *real_url = getenv("OPENAI_BASE_URL");
    const char *test_url = getenv("PAGENT_TEST_LLM_URL");
    const bool real = real_url != NULL && real_url[0] != '\0';
    const char *base_url = real ? real_url : test_url;
    if (base_url == NULL || base_url[0] == '\0') {
        printf("openai: SKIP (set OPENAI_BASE_URL, or run through `make test`, which starts "
               "the local test server)\n");
        return 0;
    }
    const char *model = real ? getenv("OPENAI_MODEL") : "mock-model";
    if (model == NULL || model[0] == '\0') {
        model = "gpt-4o-mini";
    }
    printf("endpoint %s, model %s (%s)\n", base_url, model, real ? "real" : "local test server");

    pagent_openai_options *options = make_options(base_url, real, model);
    pagent_agent *agent = NULL;
    pagent_status st = pagent_agent_openai(options, &agent);
    if (st == PAGENT_ERR_INVALID_ARG && strstr(pagent_last_error(), "without openai") != NULL) {
        printf("openai: SKIP (%s)\n", pagent_last_error());
        pagent_openai_options_free(options);
        return 0;
    }
    CHECK(st);
    show_validation();

    /* Retries for 429/5xx (the server's Retry-After is a floor under the backoff). */
    pagent_config *config = example_config(8, 60000);
    CHECK(pagent_config_set_max_retries(config, 2));
    CHECK(pagent_config_set_retry_backoff_ms(config, 10, 1000));
    pagent_executor *exec = NULL;
    CHECK(pagent_executor_new(config, agent, &exec));
    pagent_agent_free(agent);

    /* The test server reads directives in brackets: a 429 first, and a 401. It counts
     * `fail-first` per prompt over its lifetime, and `make test` runs this program twice
     * (under valgrind, then ASan) against one server, so the prompt names the process. */
    char busy[80];
    snprintf(busy, sizeof busy, "[fail-first=1][status=429][retry-after-ms=50] Busy? (pid %ld)",
             (long)getpid());
    const char *questions[N_QUESTIONS] = {
        "What is the capital of France?", "What is 2 + 2?", "Who wrote Hamlet?",
        "What colour is the sky?", "What is the boiling point of water in Celsius?",
        "Name a prime number above 10.", "What language is spoken in Brazil?",
        "How many legs does a spider have?", "What is H2O?", "Largest planet?",
        real ? "Smallest planet?" : busy,
        real ? "Hottest planet?" : "[status=401] Who am I?",
    };
    pagent_results *results = NULL;
    CHECK(pagent_execute(exec, questions, N_QUESTIONS, &results));
    uint64_t prompt = 0, completion = 0;
    for (size_t i = 0; i < N_QUESTIONS; i++) {
        const pagent_result *r = NULL;
        CHECK(pagent_results_get(results, i, &r));
        const bool ok = pagent_result_outcome(r) == PAGENT_OUTCOME_OK;
        printf("%-48s -> %s (%u attempt%s, %llu+%llu tokens, %.1f ms)\n", questions[i],
               ok ? pagent_result_answer(r) : pagent_result_error(r), pagent_result_attempts(r),
               pagent_result_attempts(r) == 1 ? "" : "s",
               (unsigned long long)pagent_result_prompt_tokens(r),
               (unsigned long long)pagent_result_completion_tokens(r),
               pagent_result_duration_us(r) / 1000.0);
        prompt += pagent_result_prompt_tokens(r);
        completion += pagent_result_completion_tokens(r);
        if (real) {
            EXPECT(ok, "question %zu answered", i);
            continue;
        }
        if (i == 11) {
            EXPECT(!ok && strstr(pagent_result_error(r), "401") != NULL,
                   "a 401 fails with the server's message");
            EXPECT(pagent_result_attempts(r) == 1, "a 401 is not retried");
            continue;
        }
        EXPECT(ok, "question %zu answered", i);
        EXPECT(strstr(pagent_result_answer(r), questions[i]) != NULL,
               "the test server echoes the question");
        EXPECT(pagent_result_prompt_tokens(r) > 0 && pagent_result_completion_tokens(r) > 0,
               "token usage on every answer");
        EXPECT(pagent_result_attempts(r) == (i == 10 ? 2u : 1u), "attempts of question %zu", i);
    }
    pagent_results_free(results);

    pagent_metrics m;
    CHECK(pagent_executor_metrics(exec, &m));
    printf("metrics: %llu ok, %llu failed, %llu prompt + %llu completion tokens, p50 %.1f ms\n",
           (unsigned long long)m.successful_count, (unsigned long long)m.failed_count,
           (unsigned long long)m.prompt_tokens, (unsigned long long)m.completion_tokens,
           m.p50_duration_us / 1000.0);
    EXPECT(m.prompt_tokens == prompt && m.completion_tokens == completion,
           "metrics sum the tokens of the results");
    pagent_executor_free(exec);

    /* Consensus over a pool: one agent per model. The test server draws vote answers
     * from a hash of model and prompt, so five "models" can disagree. */
    pagent_agent *voters[N_VOTERS];
    for (size_t i = 0; i < N_VOTERS; i++) {
        char name[32];
        snprintf(name, sizeof name, "voter-%zu", i);
        pagent_openai_options *vo = make_options(base_url, real, real ? model : name);
        CHECK(pagent_agent_openai(vo, &voters[i]));
        pagent_openai_options_free(vo);
    }
    pagent_executor *pool = NULL;
    CHECK(pagent_executor_new_pool(config, (const pagent_agent *const *)voters, N_VOTERS, &pool));
    for (size_t i = 0; i < N_VOTERS; i++) {
        pagent_agent_free(voters[i]);
    }
    const char *vote_q = real ? "What city is France's capital? One word."
                              : "[vote=Paris:0.75|Lyon:0.15|Nice:0.10] What city is France's capital?";
    pagent_consensus *c = NULL;
    CHECK(pagent_run_consensus(pool, vote_q, N_VOTERS, &c));
    printf("consensus: \"%s\", confidence %.2f (%zu of %zu), reached %s%s\n",
           pagent_consensus_answer(c) ? pagent_consensus_answer(c) : "(none)",
           pagent_consensus_confidence(c), pagent_consensus_votes(c),
           pagent_consensus_counted(c), pagent_consensus_reached(c) ? "yes" : "no",
           pagent_consensus_early_stopped(c) ? " (stopped early)" : "");
    if (!real) {
        EXPECT(pagent_consensus_reached(c), "the voters agree");
        EXPECT(strcmp(pagent_consensus_answer(c), "Paris") == 0, "Paris wins");
    }
    pagent_consensus_free(c);
    pagent_executor_free(pool);
    pagent_config_free(config);
    pagent_openai_options_free(options);

    CHECK(pagent_shutdown(5000));
    printf("openai: OK\n");
    return 0;
}
