/* Tiny assertion helpers shared by the C tests. */
#ifndef PAGENT_TEST_CHECK_H
#define PAGENT_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel_agents.h"

static int check_failures = 0;

/* Expects `call` to return `want`; on a failure status, also a non-empty last error. */
#define EXPECT_STATUS(call, want)                                                        \
  do {                                                                                   \
    pagent_status got_ = (call);                                                         \
    if (got_ != (want)) {                                                                \
      fprintf(stderr, "%s:%d: %s returned %s, want %s (last error: %s)\n", __FILE__,    \
              __LINE__, #call, pagent_status_str(got_), pagent_status_str(want),         \
              pagent_last_error());                                                      \
      check_failures++;                                                                  \
    } else if (got_ >= 100 && pagent_last_error()[0] == '\0') {                          \
      fprintf(stderr, "%s:%d: %s failed without a message\n", __FILE__, __LINE__, #call); \
      check_failures++;                                                                  \
    }                                                                                    \
  } while (0)

#define EXPECT(cond)                                                                     \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);               \
      check_failures++;                                                                  \
    }                                                                                    \
  } while (0)

/* The last error mentions `needle`. */
#define EXPECT_ERROR_MENTIONS(needle)                                                    \
  do {                                                                                   \
    if (strstr(pagent_last_error(), (needle)) == NULL) {                                 \
      fprintf(stderr, "%s:%d: last error \"%s\" does not mention \"%s\"\n", __FILE__,   \
              __LINE__, pagent_last_error(), (needle));                                  \
      check_failures++;                                                                  \
    }                                                                                    \
  } while (0)

static int check_report(const char *name) {
  if (check_failures) {
    fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

#endif
