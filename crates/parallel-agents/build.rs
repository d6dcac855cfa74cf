//! Links what the optional features need: with `python`, an rpath to libpython.

include!("build/python_rpath.rs");

fn main() {
    python_rpath(true);
}
