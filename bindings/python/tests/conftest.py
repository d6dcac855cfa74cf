"""Shared fixtures: a mock-llm server of our own on 127.0.0.1 (tools/mock-llm)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import urllib.request
from typing import Iterator, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def mock_llm_binary() -> pathlib.Path:
    """The mock-llm binary: $MOCK_LLM, else the newest cargo built (target/release or
    target/debug), else one built now with cargo."""
    if os.environ.get("MOCK_LLM"):
        return pathlib.Path(os.environ["MOCK_LLM"])
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    built = [p for p in (target / "release" / "mock-llm", target / "debug" / "mock-llm") if p.exists()]
    if built:
        return max(built, key=lambda p: p.stat().st_mtime)
    subprocess.run(["cargo", "build", "-p", "mock-llm"], cwd=ROOT, check=True)
    return target / "debug" / "mock-llm"


class MockLLM:
    """A running mock-llm: ``url`` is its OpenAI base URL; ``stats()`` its /stats."""

    def __init__(self, latency_ms: int, jitter_ms: int = 0) -> None:
        self.proc = subprocess.Popen(
            [
                str(mock_llm_binary()),
                "--port", "0",
                "--latency-ms", str(latency_ms),
                "--jitter-ms", str(jitter_ms),
                "--max-seconds", "600",
                "--quiet",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        line: Optional[str] = self.proc.stdout.readline() if self.proc.stdout else None
        if not line:
            self.proc.kill()
            raise RuntimeError("mock-llm did not start")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats") as r:
            return json.load(r)

    def reset(self) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/reset", method="POST")
        urllib.request.urlopen(req).read()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def mock_llm() -> Iterator[MockLLM]:
    """mock-llm answering after 50 ms."""
    server = MockLLM(latency_ms=50)
    try:
        yield server
    finally:
        server.stop()


class RedisServer:
    """A redis-server of our own on 127.0.0.1 (a free port, no persistence, a temporary
    directory); ``url`` is its URL."""

    def __init__(self, tmp: pathlib.Path) -> None:
        import socket
        import time

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """A redis-server for the test session. Without one on PATH: a loud skip, and a
    failure under CI (which installs it)."""
    import shutil

    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not on PATH under CI")
        pytest.skip("SKIP: redis-server is not on PATH (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
