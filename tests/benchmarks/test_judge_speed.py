"""Judge throughput (`pytest -m benchmark -s`): the OpenAI judge through run_judge against the loopback server
answering every request after 100 ms, at concurrency 1 and 32, and the requests a cached re-run makes.

The server runs in a child process, as a real endpoint would be elsewhere: in-process, its request handling
would share the judge's GIL and be counted as the judge's overhead. Concurrency 32 is timed three times (fresh
store and judge each time) and the median is reported; concurrency 1 (about 7 s, and steady) once.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.judges import JudgeRequest, coverage_prompt, run_judge
from harness.store import Store

pytest.importorskip("openai", reason="the OpenAI judge needs the openai package")
from harness.judges.openai_judge import OpenAIJudge  # noqa: E402

KEY = "sk-judge-bench-0123456789"
LATENCY_S = 0.1
N_PROMPTS = 64
SERVE = """
import os, sys
from harness.testing import FakeOpenAIServer
server = FakeOpenAIServer(api_key=os.environ["OPENAI_API_KEY"], delay_s=float(sys.argv[1]),
                          responder=lambda prompt: "Yes").start()
print(server.port, flush=True)
for _ in sys.stdin:  # each line asks how many requests the server has received
    print(len(server.requests), flush=True)
server.stop()
"""


@contextmanager
def server_process(latency_s: float) -> Iterator[tuple[str, Callable[[], int]]]:
    """(base_url, received()) of a FakeOpenAIServer in a child process; received() counts its requests."""
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(latency_s)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    assert proc.stdin is not None and proc.stdout is not None
    try:
        port = int(proc.stdout.readline())

        def received() -> int:
            proc.stdin.write("\n")
            proc.stdin.flush()
            return int(proc.stdout.readline())

        yield f"http://127.0.0.1:{port}/v1", received
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def timed_run(base_url: str, store_path: Path, requests: list[JudgeRequest], concurrency: int) -> float:
    """Prompts per second of one run_judge over `requests` with a fresh store and judge."""
    with Store(store_path) as store, OpenAIJudge("gpt-bench", base_url=base_url, max_concurrency=concurrency,
                                                 timeout_s=10) as judge:
        start = time.perf_counter()
        report = run_judge(judge, store, requests)
        elapsed = time.perf_counter() - start
    assert report.requested == len(requests) and report.counts == {"yes": len(requests)}
    return report.requested / elapsed


@pytest.mark.benchmark
def test_judge_throughput_concurrency_1_vs_32_and_a_cached_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    requests = [JudgeRequest(coverage_prompt(f"A dog and a cat [{i}].", "A puppy next to a kitten."))
                for i in range(N_PROMPTS)]
    with server_process(LATENCY_S) as (base_url, received):
        rate_1 = timed_run(base_url, tmp_path / "c1.sqlite", requests, 1)
        rates_32 = [timed_run(base_url, tmp_path / f"c32-{i}.sqlite", requests, 32) for i in range(3)]
        before = received()
        with Store(tmp_path / "c1.sqlite") as store, OpenAIJudge("gpt-bench", base_url=base_url) as judge:
            start = time.perf_counter()
            rerun = run_judge(judge, store, requests)
            rerun_s = time.perf_counter() - start
        sent = received() - before
    rate_32 = statistics.median(rates_32)
    ratio = rate_32 / rate_1
    with capsys.disabled():
        print(f"\nOpenAI judge via run_judge, {N_PROMPTS} prompts, loopback server (child process) with "
              f"{LATENCY_S * 1000:.0f} ms latency per request:")
        print(f"  concurrency 1: {rate_1:.1f} prompts/s   concurrency 32: {rate_32:.1f} prompts/s (median of "
              f"{', '.join(f'{r:.0f}' for r in rates_32)})   ratio {ratio:.1f}x (target >= 20x)")
        print(f"  cached re-run: {sent} requests (target 0), {rerun.cached} cache hits in {rerun_s * 1000:.0f} ms")
    assert sent == 0 and rerun.requested == 0 and rerun.cached == N_PROMPTS
    assert ratio >= 20
