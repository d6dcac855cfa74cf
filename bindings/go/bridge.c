// See bridge.h.
#include "bridge.h"

#include "_cgo_export.h"

void pago_read(const pagent_result *r, pago_result *out) {
  out->answer = pagent_result_answer(r);
  out->error = pagent_result_error(r);
  out->index = pagent_result_question_index(r);
  out->agent_id = pagent_result_agent_id(r);
  out->duration_us = pagent_result_duration_us(r);
  out->prompt_tokens = pagent_result_prompt_tokens(r);
  out->completion_tokens = pagent_result_completion_tokens(r);
  out->outcome = pagent_result_outcome(r);
  out->attempts = pagent_result_attempts(r);
  out->id = pagent_result_id(r);
  out->replayed = pagent_result_replayed(r);
  out->retryable = pagent_result_retryable(r);
}

// Reads the first n results of rs into out (borrowed strings: valid until rs is freed).
pagent_status pago_results_read(const pagent_results *rs, pago_result *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const pagent_result *r = NULL;
    pagent_status st = pagent_results_get(rs, i, &r);
    if (st != PAGENT_OK) return st;
    pago_read(r, &out[i]);
  }
  return PAGENT_OK;
}

// Waits up to timeout_ms for one result, then takes whatever else is ready without
// waiting, up to cap. Returns PAGENT_OK with *n >= 1 (the caller owns rs[0..*n) and frees
// them with pago_free_many), or the first call's status (PAGENT_DONE, PAGENT_WAIT_TIMEOUT
// or a failure) with *n = 0.
pagent_status pago_next_many(const pagent_batch *b, int64_t timeout_ms, pagent_result **rs,
                             pago_result *out, size_t cap, size_t *n) {
  *n = 0;
  pagent_status st = pagent_batch_next(b, timeout_ms, &rs[0]);
  if (st != PAGENT_OK) return st;
  pago_read(rs[0], &out[0]);
  size_t k = 1;
  while (k < cap && pagent_batch_next(b, 0, &rs[k]) == PAGENT_OK) {
    pago_read(rs[k], &out[k]);
    k++;
  }
  *n = k;
  return PAGENT_OK;
}

void pago_free_many(pagent_result **rs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    pagent_result_free(rs[i]);
    rs[i] = NULL;
  }
}

static int32_t pago_answer_tramp(void *user_data, const char *question, size_t agent_id,
                                 pagent_reply *reply) {
  return pagoAnswer((uintptr_t)user_data, (char *)question, agent_id, reply);
}

static void pago_start_tramp(void *user_data, const char *question, size_t agent_id,
                             pagent_pending *pending) {
  pagoStart((uintptr_t)user_data, (char *)question, agent_id, (uintptr_t)pending);
}

static void pago_release_tramp(void *user_data) { pagoRelease((uintptr_t)user_data); }

pagent_status pago_agent_func(uintptr_t handle, pagent_agent **out) {
  return pagent_agent_callback(pago_answer_tramp, (void *)handle, pago_release_tramp, out);
}

pagent_status pago_agent_async(uintptr_t handle, pagent_agent **out) {
  return pagent_agent_callback_async(pago_start_tramp, (void *)handle, pago_release_tramp, out);
}

pagent_status pago_pending_complete(uintptr_t token, const char *answer) {
  return pagent_pending_complete((pagent_pending *)token, answer);
}

pagent_status pago_pending_fail(uintptr_t token, const char *message, bool retryable) {
  return pagent_pending_fail((pagent_pending *)token, message, retryable);
}
