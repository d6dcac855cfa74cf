// Every constant of the header is usable from C++: in constexpr and static_assert, with
// the value and sign it documents, converting without narrowing to the type the API
// takes. The C side is tests/constants.c.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>

#include "check.h"

constexpr std::int64_t max_timeout_ms{PAGENT_MAX_TIMEOUT_MS};  // braces: no narrowing
static_assert(max_timeout_ms == 30LL * 24 * 3600 * 1000, "30 days in ms");
static_assert(PAGENT_MAX_TIMEOUT_MS > INT32_MAX, "a wide literal, not an int product");
constexpr std::size_t max_batch{PAGENT_MAX_BATCH};
static_assert(max_batch == 100000000, "PAGENT_MAX_BATCH");
constexpr std::size_t max_voters{PAGENT_MAX_CONSENSUS_AGENTS};
static_assert(max_voters == 100000 && max_voters <= max_batch, "PAGENT_MAX_CONSENSUS_AGENTS");
constexpr std::size_t cache_capacity{PAGENT_METRICS_CACHE_CAPACITY};
static_assert(cache_capacity == 1024, "PAGENT_METRICS_CACHE_CAPACITY");

constexpr int callback_codes[] = {PAGENT_CALLBACK_OK, PAGENT_CALLBACK_ERROR,
                                  PAGENT_CALLBACK_RETRY};
static_assert(callback_codes[0] == 0 && callback_codes[1] == 1 && callback_codes[2] == 2,
              "callback codes");

static_assert(std::is_same<std::underlying_type<pagent_status>::type, std::uint32_t>::value,
              "pagent_status is a uint32_t enum in C++");
constexpr std::uint32_t code(pagent_status s) { return static_cast<std::uint32_t>(s); }
constexpr pagent_status statuses[] = {
    PAGENT_OK,           PAGENT_DONE,           PAGENT_WAIT_TIMEOUT, PAGENT_ERR_NULL,
    PAGENT_ERR_INVALID_ARG, PAGENT_ERR_UTF8,    PAGENT_ERR_CONFIG,   PAGENT_ERR_NOT_FOUND,
    PAGENT_ERR_STALE,    PAGENT_ERR_DUPLICATE_ID, PAGENT_ERR_REENTRANT, PAGENT_ERR_SHUTDOWN,
    PAGENT_ERR_FORKED,   PAGENT_ERR_RUNTIME,    PAGENT_ERR_PYTHON,   PAGENT_ERR_JOURNAL,
    PAGENT_ERR_JOURNAL_LOCKED, PAGENT_ERR_JOURNAL_MISMATCH, PAGENT_ERR_JOURNAL_VERSION,
    PAGENT_ERR_PANIC,
};
constexpr std::uint32_t status_codes[] = {0,   1,   2,   100, 101, 102, 103, 104, 105, 106,
                                          110, 111, 112, 113, 120, 130, 131, 132, 133, 199};
constexpr bool same_codes() {
  for (std::size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
    if (code(statuses[i]) != status_codes[i]) return false;
  }
  return sizeof statuses / sizeof statuses[0] == sizeof status_codes / sizeof status_codes[0];
}
static_assert(same_codes(), "status codes are fixed forever");
static const char *const status_names[] = {
    "PAGENT_OK",           "PAGENT_DONE",          "PAGENT_WAIT_TIMEOUT",
    "PAGENT_ERR_NULL",     "PAGENT_ERR_INVALID_ARG", "PAGENT_ERR_UTF8",
    "PAGENT_ERR_CONFIG",   "PAGENT_ERR_NOT_FOUND", "PAGENT_ERR_STALE",
    "PAGENT_ERR_DUPLICATE_ID", "PAGENT_ERR_REENTRANT", "PAGENT_ERR_SHUTDOWN",
    "PAGENT_ERR_FORKED",   "PAGENT_ERR_RUNTIME",   "PAGENT_ERR_PYTHON",
    "PAGENT_ERR_JOURNAL",  "PAGENT_ERR_JOURNAL_LOCKED", "PAGENT_ERR_JOURNAL_MISMATCH",
    "PAGENT_ERR_JOURNAL_VERSION", "PAGENT_ERR_PANIC",
};

static_assert(std::is_same<std::underlying_type<pagent_outcome>::type, std::uint32_t>::value,
              "pagent_outcome is a uint32_t enum in C++");
constexpr pagent_outcome outcomes[] = {PAGENT_OUTCOME_OK, PAGENT_OUTCOME_FAILED,
                                       PAGENT_OUTCOME_TIMED_OUT, PAGENT_OUTCOME_CANCELLED};
static_assert(outcomes[0] == 0 && outcomes[1] == 1 && outcomes[2] == 2 && outcomes[3] == 3,
              "outcomes");

// The version, as constexpr numbers equal to pagent_version().
constexpr unsigned version_major{PAGENT_VERSION_MAJOR};
constexpr unsigned version_minor{PAGENT_VERSION_MINOR};
constexpr unsigned version_patch{PAGENT_VERSION_PATCH};
static_assert(version_major < 1000 && version_minor < 1000 && version_patch < 1000, "version");

int main() {
  {
    const std::string want = std::to_string(version_major) + "." +
                             std::to_string(version_minor) + "." + std::to_string(version_patch);
    if (want != pagent_version()) {
      std::fprintf(stderr, "version %s != %s\n", want.c_str(), pagent_version());
      return 1;
    }
  }
  for (std::size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
    EXPECT(std::strcmp(pagent_status_str(code(statuses[i])), status_names[i]) == 0);
  }
  // The constants as arguments: one past each limit is refused.
  const char *qs[] = {"q"};
  pagent_agent *agent = nullptr;
  pagent_mock_options o;
  pagent_mock_options_init(&o);
  o.latency_us = 0;
  EXPECT_STATUS(pagent_agent_mock(&o, &agent), PAGENT_OK);
  pagent_executor *ex = nullptr;
  EXPECT_STATUS(pagent_executor_new(nullptr, agent, &ex), PAGENT_OK);
  pagent_batch *batch = nullptr;
  EXPECT_STATUS(pagent_submit(ex, qs, 1, &batch), PAGENT_OK);
  pagent_results *res = nullptr;
  EXPECT_STATUS(pagent_batch_wait(batch, max_timeout_ms + 1, &res), PAGENT_ERR_INVALID_ARG);
  EXPECT_STATUS(pagent_batch_wait(batch, PAGENT_MAX_TIMEOUT_MS, &res), PAGENT_OK);
  pagent_results_free(res);
  pagent_batch_free(batch);
  pagent_consensus *c = nullptr;
  EXPECT_STATUS(pagent_run_consensus(ex, "q", max_voters + 1, &c), PAGENT_ERR_INVALID_ARG);
  EXPECT_STATUS(pagent_execute(ex, qs, max_batch + 1, &res), PAGENT_ERR_INVALID_ARG);
  pagent_executor_free(ex);
  pagent_agent_free(agent);
  return check_report("constants (C++)");
}
