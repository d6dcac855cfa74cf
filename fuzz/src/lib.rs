//! Fuzz targets for parallel-agents. The logic is in [`targets`], which has no libFuzzer
//! dependency, so `tests/fuzz_corpus.rs` in the main crate replays the corpus on stable.

pub mod targets;
