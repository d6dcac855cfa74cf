#!/usr/bin/env bash
# The OpenAI-agent benchmark: N chat completions at concurrency C against the local test
# server (mock-llm, 127.0.0.1 only, fixed latency), from a C host through
# pagent_agent_openai, and from Python's official AsyncOpenAI client and LiteLLM's
# batch_completion when they import. Prints figures; asserts nothing but correct answers.
#
#   bench/openai/run.sh                    # N=10000 C=1000 latency 100 ms
#   N=2000 C=200 REPS=1 PY_REPS=1 bench/openai/run.sh
#
# REPS (default 3) repetitions for the C host, PY_REPS (default 1) for each Python client:
# they take 30-100x longer per run, and their gap to the C host dwarfs run-to-run noise.
#
# Builds its own release library and server under target/bench-openai (so it never
# replaces binaries another benchmark is running), and stops the server on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=${N:-10000}
C=${C:-1000}
LATENCY_MS=${LATENCY_MS:-100}
REPS=${REPS:-3}
PY_REPS=${PY_REPS:-1}
PY=${PY:-$ROOT/.venv/bin/python}
TARGET=$ROOT/target/bench-openai
OUT=$TARGET/out
mkdir -p "$OUT"

echo "==> building and installing (release, feature openai only) under $TARGET/stage"
cargo build --release --quiet -p mock-llm
CARGO_TARGET_DIR="$TARGET" cargo run --release --quiet -p xtask -- \
  install --prefix "$TARGET/stage" --features openai
export PKG_CONFIG_PATH="$TARGET/stage/lib/pkgconfig"
cc -O2 -std=c11 -Wall -Wextra -Werror -o "$OUT/c_openai_bench" \
  "$ROOT/bench/openai/c_openai_bench.c" $(pkg-config --cflags --libs parallel_agents) \
  -Wl,-rpath,"$TARGET/stage/lib"
LIB=$ROOT/target/release

echo "==> mock-llm on 127.0.0.1, latency ${LATENCY_MS} ms"
"$LIB/mock-llm" --port 0 --latency-ms "$LATENCY_MS" --max-seconds 1800 --quiet >"$OUT/port" &
MOCK=$!
trap 'kill $MOCK 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -q . "$OUT/port" 2>/dev/null && break; sleep 0.05; done
URL="http://127.0.0.1:$(head -n1 "$OUT/port")/v1"
echo "    $URL"
# The C host's file-descriptor limit must fit C connections (and Python's too).
ulimit -n "$(( C * 2 + 1024 ))" 2>/dev/null || true

echo "machine: $(nproc) cores, $(uname -sr); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "==> C host, pagent_agent_openai (N=$N C=$C)"
"$OUT/c_openai_bench" "$URL" "$N" "$C" "$LATENCY_MS" "$REPS" | tee "$OUT/c.txt"

have_py() { [ -x "$PY" ] && "$PY" -c "import $1" 2>/dev/null; }
# Installs a Python client from PyPI if it is missing; true if it then imports.
ensure_py() {
  if ! have_py "$1" && [ -x "$PY" ]; then
    echo "==> pip install $1"
    "$PY" -m pip install -q --disable-pip-version-check "$1" || true
  fi
  have_py "$1"
}
if ensure_py openai; then
  echo "==> Python, openai.AsyncOpenAI behind asyncio.Semaphore($C) ($("$PY" -c 'import openai; print(openai.__version__)'))"
  "$PY" "$ROOT/bench/openai/py_openai_bench.py" openai "$URL" --n "$N" --c "$C" \
    --latency-ms "$LATENCY_MS" --reps "$PY_REPS" | tee "$OUT/py_openai.txt"
else
  echo "==> SKIP Python openai: not importable with $PY"
fi
if ensure_py litellm; then
  echo "==> Python, litellm.batch_completion (max_workers=$C) ($("$PY" -m pip show litellm 2>/dev/null | sed -n 's/^Version: //p'))"
  "$PY" "$ROOT/bench/openai/py_openai_bench.py" litellm "$URL" --n "$N" --c "$C" \
    --latency-ms "$LATENCY_MS" --reps "$PY_REPS" | tee "$OUT/py_litellm.txt" \
    || echo "    (litellm run failed)"
else
  echo "==> SKIP LiteLLM: not importable with $PY"
fi

# Median of the reps per client, side by side.
echo
echo "==> summary (median of the reps; overhead = client time per call - server time)"
cat "$OUT"/*.txt | grep '^bench=openai' | awk '
  { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    k = v["impl"]; if (!(k in n)) order[++m] = k
    n[k]++; eff[k, n[k]] = v["efficiency"]; wall[k, n[k]] = v["wall_s"]
    p50[k, n[k]] = v["overhead_p50_us"]; p99[k, n[k]] = v["overhead_p99_us"]
    cpu[k, n[k]] = v["cpu_us_per_call"]; delete v }
  function med(a, k, cnt,   i, j, t, x) {
    for (i = 1; i <= cnt; i++) x[i] = a[k, i] + 0
    for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
    return x[int((cnt + 1) / 2)] }
  END {
    printf "%-12s %5s %8s %10s %14s %14s %12s\n", "client", "reps", "wall_s", "efficiency", "overhead_p50", "overhead_p99", "cpu_us/call"
    for (i = 1; i <= m; i++) { k = order[i]
      printf "%-12s %5d %8.3f %10.3f %11.0f us %11.0f us %12.1f\n", k, n[k], med(wall, k, n[k]), med(eff, k, n[k]), med(p50, k, n[k]), med(p99, k, n[k]), med(cpu, k, n[k]) } }'
