//! An rpath to the libpython that pyo3 links, for when the workspace builds the core with
//! its `python` feature (features are unified across the packages built together).

include!("../../crates/parallel-agents/build/python_rpath.rs");

fn main() {
    python_rpath(false);
}
