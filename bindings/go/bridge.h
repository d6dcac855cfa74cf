// The C side of the Go binding: small helpers that read a result in one cgo call, take
// several results from a batch per call, and adapt the library's callbacks to the
// //export'ed Go functions in callback.go. Handles and pending tokens travel as
// uintptr_t (integers, not Go pointers, so cgo's pointer rules hold); the conversions to
// and from pointers happen here, in C.
#ifndef PAGO_BRIDGE_H
#define PAGO_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parallel_agents.h"

// One result's fields. The strings are borrowed from the result they were read from.
typedef struct pago_result {
  const char *answer;
  const char *error;
  const char *id;
  uint64_t index;
  uint64_t agent_id;
  uint64_t duration_us;
  uint64_t prompt_tokens;
  uint64_t completion_tokens;
  uint32_t outcome;
  uint32_t attempts;
  bool replayed;
  bool retryable;
} pago_result;

void pago_read(const pagent_result *r, pago_result *out);
pagent_status pago_results_read(const pagent_results *rs, pago_result *out, size_t n);
pagent_status pago_next_many(const pagent_batch *b, int64_t timeout_ms, pagent_result **rs,
                             pago_result *out, size_t cap, size_t *n);
void pago_free_many(pagent_result **rs, size_t n);

pagent_status pago_agent_func(uintptr_t handle, pagent_agent **out);
pagent_status pago_agent_async(uintptr_t handle, pagent_agent **out);
pagent_status pago_pending_complete(uintptr_t token, const char *answer);
pagent_status pago_pending_fail(uintptr_t token, const char *message, bool retryable);

#endif
