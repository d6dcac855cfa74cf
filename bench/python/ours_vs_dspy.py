#!/usr/bin/env python3
"""The same I/O-bound Python function (workload.sleepy: time.sleep(0.1)) run by our
executor -- driven from this Python process through the C ABI with ctypes, the agent
made by pagent_agent_python -- and by DSPy's dspy.utils.parallelizer.ParallelExecutor
with the same number of threads. Each measured time is printed beside its ideal,
ceil(N / C) * 100 ms, and as key=value lines. Printed, not asserted; exits non-zero only
if an answer is lost or wrong.

    cargo build --release -p parallel-agents-ffi
    .venv/bin/python bench/python/ours_vs_dspy.py [--lib target/release/libparallel_agents_ffi.so]
"""

import argparse
import ctypes as C
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from workload import LATENCY_S, sleepy  # noqa: E402


class Lib:
    def __init__(self, path):
        lib = C.CDLL(path)  # CDLL releases the GIL during calls, so our threads can run Python
        P = C.c_void_p
        for name, args, res in [
            ("pagent_agent_python", [C.c_char_p, C.POINTER(P)], C.c_uint32),
            ("pagent_config_new", [], P),
            ("pagent_config_set_max_concurrency", [P, C.c_size_t], C.c_uint32),
            ("pagent_config_free", [P], None),
            ("pagent_executor_new", [P, P, C.POINTER(P)], C.c_uint32),
            ("pagent_execute", [P, C.POINTER(C.c_char_p), C.c_size_t, C.POINTER(P)], C.c_uint32),
            ("pagent_results_len", [P], C.c_size_t),
            ("pagent_results_get", [P, C.c_size_t, C.POINTER(P)], C.c_uint32),
            ("pagent_result_answer", [P], C.c_char_p),
            ("pagent_results_free", [P], None),
            ("pagent_executor_free", [P], None),
            ("pagent_agent_free", [P], None),
            ("pagent_last_error", [], C.c_char_p),
            ("pagent_shutdown", [C.c_uint64], C.c_uint32),
        ]:
            f = getattr(lib, name)
            f.argtypes, f.restype = args, res
        self.lib = lib

    def ok(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: {self.lib.pagent_last_error().decode()}")


def run_ours(lib, n, c):
    L = lib.lib
    agent = C.c_void_p()
    target = f"{os.path.join(HERE, 'workload.py')}:sleepy".encode()
    lib.ok(L.pagent_agent_python(target, C.byref(agent)), "pagent_agent_python")
    cfg = L.pagent_config_new()
    lib.ok(L.pagent_config_set_max_concurrency(cfg, c), "max_concurrency")
    ex = C.c_void_p()
    lib.ok(L.pagent_executor_new(cfg, agent, C.byref(ex)), "pagent_executor_new")
    L.pagent_config_free(cfg)
    L.pagent_agent_free(agent)
    qs = [f"q{i}".encode() for i in range(n)]
    arr = (C.c_char_p * n)(*qs)
    res = C.c_void_p()
    t0 = time.perf_counter()
    lib.ok(L.pagent_execute(ex, arr, n, C.byref(res)), "pagent_execute")
    dt = time.perf_counter() - t0
    bad = 0
    for i in range(L.pagent_results_len(res)):
        r = C.c_void_p()
        lib.ok(L.pagent_results_get(res, i, C.byref(r)), "get")
        if L.pagent_result_answer(r) != f"{i}:q{i}".encode():
            bad += 1
    L.pagent_results_free(res)
    L.pagent_executor_free(ex)
    return dt, bad


def run_dspy(n, c):
    from dspy.utils.parallelizer import ParallelExecutor

    data = [(i, f"q{i}") for i in range(n)]
    t0 = time.perf_counter()
    out = ParallelExecutor(num_threads=c, disable_progress_bar=True).execute(
        lambda item: (item[0], sleepy(item[1], item[0])), data
    )
    dt = time.perf_counter() - t0
    bad = sum(1 for k, (i, a) in enumerate(out) if i != k or a != f"{k}:q{k}")
    return dt, bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.path.join(HERE, "../../target/release/libparallel_agents_ffi.so"))
    ap.add_argument("--cases", default="160x16,640x64")
    a = ap.parse_args()
    lib = Lib(os.path.abspath(a.lib))
    try:
        import dspy  # noqa: F401
        have_dspy = True
    except Exception as e:  # noqa: BLE001
        print(f"dspy not importable ({e}); DSPy rows skipped")
        have_dspy = False
    lost = 0
    print(f"{'executor':<28}{'N':>6}{'C':>5}{'measured':>11}{'ideal':>9}{'ratio':>7}")
    for case in a.cases.split(","):
        n, c = map(int, case.split("x"))
        ideal = math.ceil(n / c) * LATENCY_S
        rows = [("ours (C ABI, python agent)", run_ours, (lib, n, c))]
        if have_dspy:
            rows.append(("dspy ParallelExecutor", run_dspy, (n, c)))
        for name, fn, args in rows:
            fn(*args[:-2], min(args[-2], c), c)  # warm-up: one round
            dt, bad = fn(*args)
            lost += bad
            print(f"{name:<28}{n:>6}{c:>5}{dt:>10.3f}s{ideal:>8.2f}s{ideal / dt:>7.3f}")
            impl = "ours" if fn is run_ours else "dspy"
            print(f"  bench=python_io impl={impl} n={n} c={c} latency_ms=100 "
                  f"measured_s={dt:.4f} ideal_s={ideal:.4f} ratio={ideal / dt:.4f} wrong={bad}")
    lib.lib.pagent_shutdown(1000)
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
