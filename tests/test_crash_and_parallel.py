"""Nothing a run produced is lost: a SIGKILLed run resumes to the same result, and 2 processes (gloo)
store exactly what 1 process stores."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from harness.store import Store

TASKS = "smoke_colours,smoke_colours_mc"
TOTAL = 2 * 2 * 120  # 2 models x 2 tasks x 120 samples


def mgbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def run_ok(cmd: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def contents(store_path: Path) -> dict[str, tuple]:
    with Store(store_path) as store:
        return {r.key: (r.model, r.task, r.sample_id, r.text, r.prompt_tokens, r.completion_tokens,
                        r.choice_logprobs, r.error) for r in store.generations()}


def latest_metric_values(store_path: Path) -> dict[tuple, float]:
    with Store(store_path) as store:
        return {(m["model"], m["task"], m["metric"]): m["value"] for m in store.latest_metrics()}


def count_rows(store_path: Path) -> int:
    if not store_path.exists():
        return 0
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM generations").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        conn.close()


def test_sigkill_mid_run_then_rerun_equals_uninterrupted(tmp_path):
    common = ["--models", "dummy,dummy-blind", "--tasks", TASKS, "--batch-size", "4", "--no-progress"]
    reference = tmp_path / "reference.sqlite"
    run_ok(mgbench("run", "--store", str(reference), *common))

    crashed = tmp_path / "crashed.sqlite"
    # delay_s slows each batch down (it is not part of the fingerprint: outputs are unchanged).
    proc = subprocess.Popen(mgbench("run", "--store", str(crashed), *common, "--model-option", "dummy.delay_s=0.03",
                                    "--model-option", "dummy-blind.delay_s=0.03"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while count_rows(crashed) < 60:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    at_kill = count_rows(crashed)
    assert 60 <= at_kill < TOTAL
    assert at_kill % 4 == 0  # whole batches only: 120 samples per pair, batches of 4

    rerun = run_ok(mgbench("run", "--store", str(crashed), *common))
    assert "run " in rerun.stdout
    got, want = contents(crashed), contents(reference)
    assert len(got) == TOTAL
    with Store(crashed) as store:
        samples = [(r.model, r.task, r.sample_id) for r in store.generations()]
        statuses = [r["status"] for r in store.runs()]
    assert len(samples) == len(set(samples)) == TOTAL  # every sample exactly once
    assert got == want  # and identical to the uninterrupted run
    assert latest_metric_values(crashed) == latest_metric_values(reference)
    assert statuses == ["running", "finished"]  # the killed run is visibly unfinished


def test_two_gloo_processes_store_what_one_process_stores(tmp_path):
    common = ["--models", "dummy,dummy-blind", "--tasks", TASKS, "--batch-size", "5", "--no-progress"]
    single = tmp_path / "single.sqlite"
    run_ok(mgbench("run", "--store", str(single), *common))

    double = tmp_path / "double.sqlite"
    run_ok([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "harness.cli", "run", "--store", str(double), *common])
    assert contents(double) == contents(single)
    assert latest_metric_values(double) == latest_metric_values(single)
    with Store(double) as store:
        ranks = {r.rank for r in store.generations()}
        [run] = store.runs()
    assert ranks == {0, 1}  # both processes did real work
    assert run["world_size"] == 2 and run["status"] == "finished"

    # Keys do not depend on the process count: a 1-process rerun over the 2-process store has nothing to do.
    run_ok(mgbench("run", "--store", str(double), *common))
    with Store(double) as store:
        last_run = store.runs()[-1]["run_id"]
        assert last_run != run["run_id"]
        assert not [r for r in store.generations() if r.run_id == last_run]
    assert contents(double) == contents(single)
