// The C side of the Go host: the library calls these plain C functions, which forward to
// the //export'ed Go functions in main.go. user_data carries a runtime/cgo.Handle (an
// integer, not a Go pointer, so cgo's pointer rules hold); the conversions to and from
// void * happen here, in C.
#include <stdint.h>

#include "parallel_agents.h"
#include "_cgo_export.h"

static int32_t bridge_answer(void *user_data, const char *question, size_t agent_id,
                             pagent_reply *reply) {
    return goAnswer((uintptr_t)user_data, (char *)question, agent_id, reply);
}

static void bridge_free(void *user_data) {
    goReleaseAgent((uintptr_t)user_data);
}

pagent_status bridge_agent_new(uintptr_t handle, pagent_agent **out) {
    return pagent_agent_callback(bridge_answer, (void *)handle, bridge_free, out);
}
