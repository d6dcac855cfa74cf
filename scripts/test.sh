#!/usr/bin/env bash
# Every test of the project — the README's test command, and what CI runs.
#
# It brings what the tests need (the pinned Python venv for the DSPy tests; Go is used
# when the machine has it), then runs: style and lints, the Rust tests of every crate,
# the Python package (pip install + pytest), a library built without Python, the library
# installed under a prefix like any C library, the Go module's tests (go vet, go test
# -race) against that install, and the C, C++ and Go hosts built against it only (under
# valgrind, then ASan+UBSan). It ends with one summary line; anything it had to skip is
# named there, loudly. Under CI (CI set) a skip is a failure: CI must have everything.
#
#   scripts/test.sh            everything
#   SKIP_LINT=1 scripts/test.sh   without fmt/clippy (quicker while iterating)
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

passed=() failed=() skipped=()
step() { printf '\n==> %s\n' "$*"; }
# part NAME COMMAND...: runs one part, records whether it passed.
part() {
  local name=$1; shift
  step "$name: $*"
  if "$@"; then passed+=("$name"); else failed+=("$name"); echo "FAILED: $name"; fi
}
skip() {
  skipped+=("$1 ($2)")
  echo "SKIP: $1: $2"
}

# What the tests need ---------------------------------------------------------------------

step "python venv (.venv, pinned in requirements-dev.txt)"
have_venv=0
if command -v python3 >/dev/null; then
  if { [ -x .venv/bin/python ] || python3 -m venv .venv; } &&
     .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt &&
     .venv/bin/python -c 'import dspy' 2>/dev/null; then
    have_venv=1
  fi
fi
if [ "$have_venv" = 1 ]; then
  export VIRTUAL_ENV="$PWD/.venv"
  echo "dspy: $(.venv/bin/python -c 'import dspy; print(dspy.__version__)')"
  echo "ray: $(.venv/bin/python -c 'import ray; print(ray.__version__)' 2>/dev/null ||
    echo 'not importable: bindings/python/tests/test_ray.py skips (fails under CI)')"
fi

# The Go module and host need Go 1.23 (their go.mod); go 1.21 or newer fetches that
# toolchain itself (GOTOOLCHAIN=auto), an older go cannot.
have_go=0 go_missing="go is not installed"
if command -v go >/dev/null; then
  go version
  go_minor=$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
  if [ "${go_minor:-0}" -ge 21 ]; then have_go=1; else go_missing="$(go env GOVERSION) is older than go1.21"; fi
fi

# The parts -------------------------------------------------------------------------------

if [ -z "${SKIP_LINT:-}" ]; then
  part "fmt" cargo fmt --all -- --check
  part "clippy" cargo clippy --workspace --all-targets -- -D warnings
else
  skip "fmt+clippy" "SKIP_LINT is set"
fi

part "build" cargo build --workspace

# The DSPy tests print SKIP and pass without dspy, except under CI; here a missing dspy is
# named in the summary either way.
rust_skips=""
rust_tests() {
  local log rc
  log=$(mktemp)
  cargo test --workspace 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  rust_skips=$(grep -h '^SKIP' "$log" | sort -u)
  rm -f "$log"
  return "$rc"
}
part "cargo test" rust_tests
[ -z "$rust_skips" ] || skip "Rust tests that printed SKIP" "$(echo "$rust_skips" | tr '\n' ' ')"
[ "$have_venv" = 1 ] || skip "DSPy tests" "no .venv with dspy (python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt)"

# The Python package (bindings/python): its own cargo workspace, so it is linted here on
# its own; then built and installed into the venv as a user would (pip, with the venv's
# pinned maturin; its own target dir, so rebuilds are incremental), checked not to link
# libpython, and its pytest suite run (mock-llm from the build above).
PY_TARGET="$PWD/target/python"
if [ -z "${SKIP_LINT:-}" ]; then
  part "python package fmt" cargo fmt --manifest-path bindings/python/Cargo.toml -- --check
  part "python package clippy" env CARGO_TARGET_DIR="$PY_TARGET" \
    cargo clippy --manifest-path bindings/python/Cargo.toml --all-targets -- -D warnings
fi
python_package() {
  # --no-build-isolation: the venv's pinned maturin (on PATH for pip), no download.
  PATH="$PWD/.venv/bin:$PATH" CARGO_TARGET_DIR="$PY_TARGET" .venv/bin/pip install -q --disable-pip-version-check \
    --no-build-isolation ./bindings/python || return 1
  local so py="$PWD/.venv/bin/python"
  # From /tmp, so the import finds the installed package, not a source tree.
  so=$(cd /tmp && "$py" -c 'import parallel_agents._native as m; print(m.__file__)') || return 1
  if readelf -d "$so" | grep -i 'NEEDED.*libpython'; then
    echo "the extension module links libpython" >&2; return 1
  fi
  (cd bindings/python && timeout 300 ../../.venv/bin/python -m pytest -q -p no:cacheprovider tests)
}
if [ "$have_venv" = 1 ]; then
  part "python package (pip install + pytest)" python_package
else
  skip "python package" "no .venv (python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt)"
fi

no_python() {
  cargo build -p parallel-agents-ffi --lib --no-default-features --features openai \
    --target-dir target/nopy || return 1
  if readelf -d target/nopy/debug/libparallel_agents_ffi.so | grep -i python; then
    echo "the library without the python feature depends on libpython" >&2; return 1
  fi
  if nm -u target/nopy/debug/libparallel_agents_ffi.a 2>/dev/null | grep -q ' U Py'; then
    echo "the static library without the python feature references Python" >&2; return 1
  fi
}
part "no-python build" no_python

# Installed like a C library, then used only through what was installed.
STAGE="$PWD/target/stage"
install_lib() {
  rm -rf "$STAGE"
  cargo run -q -p xtask -- install --prefix "$STAGE" --profile dev || return 1
  local soname
  soname=$(readelf -d "$STAGE/lib/libparallel_agents.so.0.1.0" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
  [ "$soname" = "libparallel_agents.so.0.1" ] || { echo "soname is '$soname'" >&2; return 1; }
  [ "$(readlink "$STAGE/lib/libparallel_agents.so")" = "libparallel_agents.so.0.1" ] || return 1
  PKG_CONFIG_PATH="$STAGE/lib/pkgconfig" pkg-config --exists --print-errors parallel_agents &&
    PKG_CONFIG_PATH="$STAGE/lib/pkgconfig" pkg-config --modversion parallel_agents
}
part "install" install_lib

# The Go module (bindings/go) against the installed library: gofmt, go vet, and go test
# with the race detector (its HTTP test starts the mock-llm built by the build part).
go_module() (
  cd bindings/go || exit 1
  export PKG_CONFIG_PATH="$STAGE/lib/pkgconfig" LD_LIBRARY_PATH="$STAGE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    GOCACHE="$PWD/../../target/go-cache" GOFLAGS=-mod=mod CGO_ENABLED=1 \
    PAGENT_MOCK_LLM="$PWD/../../target/debug/mock-llm"
  unset OPENAI_BASE_URL OPENAI_API_KEY OPENAI_MODEL
  local unformatted
  unformatted=$(gofmt -l . ../../examples-c/go) || exit 1
  [ -z "$unformatted" ] || { echo "gofmt -l: not formatted: $unformatted" >&2; exit 1; }
  go vet ./... && go test -race -count=1 -timeout 5m ./...
)
if [ "$have_go" = 1 ]; then
  part "Go module" go_module
else
  skip "Go module" "$go_missing"
fi

c_hosts() {
  local go_flag=()
  [ "$have_go" = 1 ] || go_flag=(SKIP_GO=1)
  make -C examples-c -j2 --output-sync=target test PREFIX="$STAGE" "${go_flag[@]}"
}
part "C/C++/Go hosts (installed library)" c_hosts
[ "$have_go" = 1 ] || skip "Go host" "$go_missing"

# Summary ---------------------------------------------------------------------------------

if [ -n "${CI:-}" ] && [ ${#skipped[@]} -gt 0 ]; then
  failed+=("CI skipped parts")
fi
echo
for f in "${failed[@]}"; do echo "!!! FAILED: $f"; done
summary="test.sh: ${#passed[@]} passed, ${#failed[@]} failed"
if [ ${#skipped[@]} -gt 0 ]; then
  summary+=", ${#skipped[@]} skipped (!!! $(IFS=';'; echo "${skipped[*]}"))"
fi
echo "$summary"
[ ${#failed[@]} -eq 0 ]
