/*
 * consensus.c: ask several agents the same question and vote. Answers are normalised
 * (trimmed, case-folded, whitespace collapsed, trailing punctuation stripped) before
 * they are counted; consensus is reached when the winner's share meets the threshold.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "example.h"

/* Runs one round and prints it; the caller checks and frees the verdict. */
static pagent_consensus *run_round(const pagent_executor *exec, const char *question,
                                   size_t n_agents) {
    pagent_consensus *c = NULL;
    CHECK(pagent_run_consensus(exec, question, n_agents, &c));
    const pagent_results *calls = pagent_consensus_results(c);
    EXPECT(calls != NULL && pagent_results_len(calls) == n_agents, "one result per voter");
    for (size_t i = 0; i < n_agents; i++) {
        const pagent_result *r = NULL;
        CHECK(pagent_results_get(calls, i, &r));
        EXPECT(pagent_result_question_index(r) == i, "voter order");
        if (pagent_result_outcome(r) == PAGENT_OUTCOME_CANCELLED) {
            printf("  voter %zu: (cancelled: could not change the verdict)\n", i);
        } else {
            printf("  voter %zu: %s\n", i, pagent_result_answer(r));
        }
    }
    printf("%s -> answer \"%s\", confidence %.2f, votes %zu/%zu, reached %s%s\n", question,
           pagent_consensus_answer(c), pagent_consensus_confidence(c), pagent_consensus_votes(c),
           pagent_consensus_counted(c), pagent_consensus_reached(c) ? "yes" : "no",
           pagent_consensus_early_stopped(c) ? " (stopped early)" : "");
    return c;
}

/* An executor over a fresh mock; the caller frees it. */
static pagent_executor *mock_executor(const pagent_mock_options *mock, bool early_stop) {
    pagent_config *config = example_config(8, 30000);
    CHECK(pagent_config_set_consensus_threshold(config, 0.6));
    CHECK(pagent_config_set_consensus_early_stop(config, early_stop));
    pagent_agent *agent = NULL;
    CHECK(pagent_agent_mock(mock, &agent));
    pagent_executor *exec = NULL;
    CHECK(pagent_executor_new(config, agent, &exec));
    pagent_agent_free(agent);
    pagent_config_free(config);
    return exec;
}

int main(void) {
    /* Vote mode: "Paris" and "paris." are the same answer once normalised (80%). With
     * early stop on (the default), the round ends once the outstanding voters can no
     * longer change the verdict; they come back cancelled and are not counted. */
    static const char *const answers[] = {"Paris", "  paris.", "Lyon", "Marseille"};
    static const double weights[] = {0.5, 0.3, 0.1, 0.1};
    pagent_mock_options mock;
    pagent_mock_options_init(&mock);
    mock.latency_us = 10000;
    mock.jitter_us = 5000;
    mock.vote_answers = answers;
    mock.vote_weights = weights;
    mock.n_vote_answers = 4;
    pagent_executor *voting = mock_executor(&mock, true);
    const size_t voters = 15;
    pagent_consensus *c = run_round(voting, "What is the capital of France?", voters);
    const size_t counted = pagent_consensus_counted(c), votes = pagent_consensus_votes(c);
    pagent_metrics m;
    CHECK(pagent_results_metrics(pagent_consensus_results(c), &m));
    EXPECT(counted + m.cancelled_count == voters, "every voter answered or was cancelled");
    /* Only an early stop cancels voters (one may also find them all finished already). */
    EXPECT(m.cancelled_count == 0 || pagent_consensus_early_stopped(c), "early stop cancels");
    /* Reaching 60% even when the round stops early takes at least 9 of 15 votes. */
    EXPECT(2 * votes > voters, "a real majority: %zu of %zu voters", votes, voters);
    EXPECT(pagent_consensus_reached(c), "consensus reached at confidence %.2f",
           pagent_consensus_confidence(c));
    EXPECT(fabs(pagent_consensus_confidence(c) - (double)votes / counted) < 1e-9,
           "confidence = votes / counted");
    const char *answer = pagent_consensus_answer(c);
    /* The winner is reported as its first voter wrote it. */
    EXPECT(answer != NULL && (strcmp(answer, "Paris") == 0 || strcmp(answer, "  paris.") == 0),
           "Paris wins, got \"%s\"", answer);
    pagent_consensus_free(c);
    pagent_executor_free(voting);

    /* Template mode: five agents give five different answers, so no consensus: 1/5.
     * Early stop off: every voter is counted. */
    pagent_mock_options_init(&mock);
    mock.latency_us = 10000;
    pagent_executor *templ = mock_executor(&mock, false);
    c = run_round(templ, "Describe the weather", 5);
    EXPECT(pagent_consensus_counted(c) == 5, "five answers counted");
    EXPECT(pagent_consensus_votes(c) == 1, "one vote for the winner");
    EXPECT(fabs(pagent_consensus_confidence(c) - 0.2) < 1e-9, "confidence 20%%, got %f",
           pagent_consensus_confidence(c));
    EXPECT(!pagent_consensus_reached(c), "no consensus at 20%%");
    /* Ties go to the lowest voter. */
    EXPECT(strcmp(pagent_consensus_answer(c), "Agent 0 answer for 'Describe the weather'") == 0,
           "winner is voter 0, got \"%s\"", pagent_consensus_answer(c));
    pagent_consensus_free(c);
    pagent_executor_free(templ);

    CHECK(pagent_shutdown(1000));
    printf("consensus: OK\n");
    return 0;
}
