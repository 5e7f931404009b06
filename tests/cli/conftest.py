"""Helpers of the command-line tests: the CLI as a user runs it, in real subprocesses."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

FAST_ENGINE = ("--decode-base-ms", "1", "--decode-ms-per-seq", "0.01")
"""Simulator settings that keep these behaviour tests short (latency figures do not matter here)."""


def run_replayer(*args: str, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m replayer ARGS...`, its output captured."""
    return subprocess.run([sys.executable, "-m", "replayer", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def replayer() -> Callable[..., subprocess.CompletedProcess]:
    """Factory: `replayer("run", "--trace", ...)` runs the CLI in a subprocess and returns its result."""
    return run_replayer


@pytest.fixture
def fast_engine() -> tuple[str, ...]:
    """Simulator options that keep behaviour tests short."""
    return FAST_ENGINE


@pytest.fixture(scope="module")
def simulate_process():
    """`replayer simulate` in its own process, as a user would start it."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "replayer", "simulate", "--port", str(port), *FAST_ENGINE],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
