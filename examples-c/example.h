/*
 * Small helpers shared by the C examples: every library call is checked, and a failed
 * check prints the call, its status and pagent_last_error(), then exits non-zero.
 */
#ifndef PAGENT_EXAMPLE_H
#define PAGENT_EXAMPLE_H

#include <stdio.h>
#include <stdlib.h>

#include "parallel_agents.h"

/* Runs a library call that must return PAGENT_OK. */
#define CHECK(call)                                                                       \
    do {                                                                                  \
        pagent_status check_status_ = (call);                                             \
        if (check_status_ != PAGENT_OK) {                                                 \
            fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #call,      \
                    pagent_status_str(check_status_), pagent_last_error());               \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

/* Asserts a condition about what the library returned; `...` is a printf message. */
#define EXPECT(cond, ...)                                                                 \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: expected %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, " (last error: %s)\n", pagent_last_error());                  \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

/* A config with the given concurrency and agent timeout. Caller frees it. */
static inline pagent_config *example_config(size_t max_concurrency, uint64_t timeout_ms) {
    pagent_config *config = pagent_config_new();
    EXPECT(config != NULL, "pagent_config_new returned NULL");
    CHECK(pagent_config_set_max_concurrency(config, max_concurrency));
    CHECK(pagent_config_set_agent_timeout_ms(config, timeout_ms));
    return config;
}

#endif /* PAGENT_EXAMPLE_H */
