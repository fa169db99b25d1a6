"""Benchmark suite (run with `pytest -m benchmark`). Until the paper's zoo lands these check the smoke
claims on the dummy models and print the runner's throughput; the paper's claims join them here."""

from __future__ import annotations

import time

import pytest

from harness.config import RunConfig
from harness.runner import Runner


@pytest.mark.benchmark
@pytest.mark.mgbench(models=["dummy", "dummy-blind"], tasks=["smoke_colours", "smoke_colours_mc"])
def test_seeing_beats_guessing(mgbench_result):
    for task in ("smoke_colours", "smoke_colours_mc"):
        seeing = mgbench_result.pair("dummy", task).metric("accuracy")
        blind = mgbench_result.pair("dummy-blind", task).metric("accuracy")
        print(f"{task}: dummy {seeing.value:.3f} [{seeing.ci_low:.3f}, {seeing.ci_high:.3f}] vs "
              f"dummy-blind {blind.value:.3f} [{blind.ci_low:.3f}, {blind.ci_high:.3f}]")
        assert seeing.ci_low > blind.ci_high


@pytest.mark.benchmark
def test_runner_throughput_and_resume_cost(tmp_path, capsys):
    """Prints samples/s of a fresh run at batch 1 and 16 and of a fully resumed run (all skipped)."""
    figures = {}
    for batch in (1, 16):
        cfg = RunConfig(store=str(tmp_path / f"b{batch}.sqlite"), tasks=("smoke_colours", "smoke_colours_mc"),
                        batch_size=batch, progress=False)
        start = time.perf_counter()
        Runner(cfg).run()
        figures[f"fresh, batch {batch}"] = 240 / (time.perf_counter() - start)
        start = time.perf_counter()
        result = Runner(cfg).run()
        figures[f"resumed, batch {batch}"] = 240 / (time.perf_counter() - start)
        assert all(p.generated == 0 for p in result.pairs)
    with capsys.disabled():
        print()
        for name, rate in figures.items():
            print(f"runner throughput ({name}): {rate:,.0f} samples/s")
        print(f"batch 16 / batch 1 (fresh): {figures['fresh, batch 16'] / figures['fresh, batch 1']:.2f}x")
