// The OpenAI-compatible HTTP agent from Go: the library makes the HTTP calls, Go only
// builds the options and reads the results. Uses OPENAI_BASE_URL / OPENAI_API_KEY when
// set, else the local test server in PAGENT_TEST_LLM_URL (make test starts it); with
// neither, or a library built without the openai feature, it says so and skips.
package main

/*
#include <stdlib.h>
#include "parallel_agents.h"
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"unsafe"
)

// openAIOptions builds agent options; the caller frees them with
// pagent_openai_options_free.
func openAIOptions(baseURL, model, keyVar string) (*C.pagent_openai_options, error) {
	o := C.pagent_openai_options_new()
	set := func(call string, f func(*C.char) C.pagent_status, value string) error {
		s := C.CString(value)
		defer C.free(unsafe.Pointer(s))
		return check(call, f(s))
	}
	steps := []struct {
		call  string
		f     func(*C.char) C.pagent_status
		value string
	}{
		{"set_base_url", func(s *C.char) C.pagent_status { return C.pagent_openai_options_set_base_url(o, s) }, baseURL},
		{"set_model", func(s *C.char) C.pagent_status { return C.pagent_openai_options_set_model(o, s) }, model},
		{"set_api_key_env", func(s *C.char) C.pagent_status { return C.pagent_openai_options_set_api_key_env(o, s) }, keyVar},
		{"set_user_template", func(s *C.char) C.pagent_status { return C.pagent_openai_options_set_user_template(o, s) }, "Briefly: {question}"},
	}
	for _, st := range steps {
		if err := set(st.call, st.f, st.value); err != nil {
			C.pagent_openai_options_free(o)
			return nil, err
		}
	}
	if err := check("set_max_tokens", C.pagent_openai_options_set_max_tokens(o, 32)); err != nil {
		C.pagent_openai_options_free(o)
		return nil, err
	}
	return o, nil
}

// runOpenAI asks a few questions through the HTTP agent and, against the test server,
// checks the answers and token counts.
func runOpenAI() error {
	baseURL, keyVar, model := os.Getenv("OPENAI_BASE_URL"), "OPENAI_API_KEY", os.Getenv("OPENAI_MODEL")
	real := baseURL != ""
	if !real {
		baseURL, keyVar, model = os.Getenv("PAGENT_TEST_LLM_URL"), "", "mock-go"
	}
	if baseURL == "" {
		fmt.Println("openai (Go): SKIP (set OPENAI_BASE_URL, or run through make test)")
		return nil
	}
	if model == "" {
		model = "gpt-4o-mini"
	}
	opts, err := openAIOptions(baseURL, model, keyVar)
	if err != nil {
		return err
	}
	defer C.pagent_openai_options_free(opts)
	var agent *C.pagent_agent
	if st := C.pagent_agent_openai(opts, &agent); st != C.PAGENT_OK {
		if msg := C.GoString(C.pagent_last_error()); strings.Contains(msg, "without openai") {
			fmt.Println("openai (Go): SKIP:", msg)
			return nil
		}
		return check("pagent_agent_openai", st)
	}
	defer C.pagent_agent_free(agent)
	config := C.pagent_config_new()
	defer C.pagent_config_free(config)
	if err := check("max_concurrency", C.pagent_config_set_max_concurrency(config, 16)); err != nil {
		return err
	}
	if err := check("max_retries", C.pagent_config_set_max_retries(config, 2)); err != nil {
		return err
	}
	var exec *C.pagent_executor
	if err := check("pagent_executor_new", C.pagent_executor_new(config, agent, &exec)); err != nil {
		return err
	}
	defer C.pagent_executor_free(exec)

	questions := []string{"What is the capital of Italy?", "What is 3 x 3?", "Who painted the Mona Lisa?"}
	if !real {
		// The test server answers 503 once, then succeeds: the retry is invisible here.
		questions = append(questions, "[fail-first=1][status=503] Are you there?")
	}
	results, err := execute(exec, questions)
	if err != nil {
		return err
	}
	var m C.pagent_metrics
	if err := check("pagent_executor_metrics", C.pagent_executor_metrics(exec, &m)); err != nil {
		return err
	}
	for i, r := range results {
		if r.outcome != C.PAGENT_OUTCOME_OK {
			return fmt.Errorf("openai question %d failed: %s", i, r.errMsg)
		}
		fmt.Printf("openai (Go): %-40s -> %s (%v)\n", questions[i], r.answer, r.duration)
		if !real && r.answer != "mock answer to: Briefly: "+questions[i] {
			return fmt.Errorf("openai question %d: unexpected answer %q", i, r.answer)
		}
	}
	fmt.Printf("openai (Go): %d answers, %d prompt + %d completion tokens\n",
		len(results), uint64(m.prompt_tokens), uint64(m.completion_tokens))
	if m.successful_count != C.uint64_t(len(questions)) || m.prompt_tokens == 0 || m.completion_tokens == 0 {
		return fmt.Errorf("openai metrics: %d ok, %d prompt tokens", m.successful_count, m.prompt_tokens)
	}
	return nil
}
