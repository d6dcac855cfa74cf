#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| parallel_agents_fuzz::targets::ffi_agent(data));
