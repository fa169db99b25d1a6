"""The runner: batching, resume, seeded subsets, per-sample errors, scoring from the store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.config import RunConfig
from harness.registry import MODELS
from harness.runner import Runner, length_sorted_batches, select_subset
from harness.store import Store
from harness.types import GenerationSettings, ImageRef, Request, generation_key
from tasks.smoke import build_smoke_dataset


def make_config(tmp_path: Path, **kw) -> RunConfig:
    return RunConfig(store=str(tmp_path / "store.sqlite"), progress=False, **kw)


def stored(store_path: str) -> dict[str, tuple]:
    with Store(store_path) as store:
        return {r.key: (r.model, r.task, r.sample_id, r.text, r.choice_logprobs, r.error)
                for r in store.generations()}


def test_request_key_ignores_path_but_not_content():
    base = Request(task="t", sample_id="1", prompt="hi", image=ImageRef("coco", "42", "/a/42.jpg"))
    moved = Request(task="t", sample_id="1", prompt="hi", image=ImageRef("coco", "42", "/elsewhere/42.jpg"))
    assert generation_key("m", base) == generation_key("m", moved)
    for other in (
        Request(task="t", sample_id="1", prompt="hi!", image=base.image),
        Request(task="t", sample_id="1", prompt="hi", image=ImageRef("coco", "43", "/a/42.jpg")),
        Request(task="t", sample_id="1", prompt="hi", image=base.image,
                settings=GenerationSettings(max_new_tokens=65)),
        Request(task="t", sample_id="1", prompt="hi", image=base.image, choices=("a", "b")),
    ):
        assert generation_key("m", other) != generation_key("m", base)
    assert generation_key("m2", base) != generation_key("m", base)
    assert Request.from_json(base.to_json()) == base
    with pytest.raises(AttributeError):
        base.prompt = "changed"  # frozen


def test_length_sorted_batches_longest_first_and_complete():
    reqs = [Request(task="t", sample_id=str(i), prompt="x" * n) for i, n in enumerate([5, 50, 1, 20, 20, 7, 3])]
    items = [(f"k{i}", r) for i, r in enumerate(reqs)]
    batches = length_sorted_batches(items, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    lengths = [len(r.prompt) for b in batches for _, r in b]
    assert lengths == sorted(lengths, reverse=True)
    assert sorted(k for b in batches for k, _ in b) == sorted(k for k, _ in items)


def test_limit_draws_seeded_subset_not_first_n():
    reqs = [Request(task="t", sample_id=f"{i:03d}", prompt="p") for i in range(100)]
    a = select_subset(reqs, 10, seed=1)
    assert [r.sample_id for r in a] == [r.sample_id for r in select_subset(reqs, 10, seed=1)]
    b = select_subset(reqs, 10, seed=2)
    assert len(a) == len(b) == 10
    assert {r.sample_id for r in a} != {r.sample_id for r in b}
    assert [r.sample_id for r in a] != [f"{i:03d}" for i in range(10)]
    assert select_subset(reqs, 1000, seed=1) == reqs


def test_run_stores_scores_and_resumes(tmp_path):
    cfg = make_config(tmp_path, models=("dummy", "dummy-blind"), tasks=("smoke_colours",), batch_size=7)
    first = Runner(cfg).run()
    assert [(p.model, p.generated, p.already_stored) for p in first.pairs] == [
        ("dummy", 120, 0), ("dummy-blind", 120, 0)]
    seeing = first.pair("dummy", "smoke_colours").metric("accuracy")
    blind = first.pair("dummy-blind", "smoke_colours").metric("accuracy")
    assert seeing.n == 120 and seeing.ci_low < seeing.value < seeing.ci_high
    assert seeing.ci_low > blind.ci_high  # the model that looks beats the one that guesses
    before = stored(cfg.store)
    second = Runner(cfg).run()
    assert [(p.generated, p.already_stored) for p in second.pairs] == [(0, 120), (0, 120)]
    assert stored(cfg.store) == before
    assert second.pair("dummy", "smoke_colours").metric("accuracy").value == seeing.value
    with Store(cfg.store) as store:
        runs = store.runs()
        assert [r["status"] for r in runs] == ["finished", "finished"]
        assert all(r["package_version"] and r["host"] and r["config_hash"] for r in runs)
        assert len(store.metrics(first.run_id)) == len(store.metrics(second.run_id)) == 4


def test_outputs_do_not_depend_on_batch_size(tmp_path):
    a = make_config(tmp_path / "a", tasks=("smoke_colours", "smoke_colours_mc"), batch_size=1)
    b = make_config(tmp_path / "b", tasks=("smoke_colours", "smoke_colours_mc"), batch_size=32)
    Runner(a).run()
    Runner(b).run()
    assert stored(a.store) == stored(b.store)
    assert len(stored(a.store)) == 240


def test_limit_is_recorded_and_keys_shared_with_full_run(tmp_path):
    cfg = make_config(tmp_path, limit=15, seed=3)
    result = Runner(cfg).run()
    with Store(cfg.store) as store:
        chosen = store.run_samples(result.run_id, "smoke_colours")
        assert len(chosen) == 15 and json.loads(store.runs()[0]["config_json"])["limit"] == 15
        assert sorted(r.sample_id for r in store.generations()) == chosen
    full = Runner(make_config(tmp_path)).run()  # same store: the 15 are reused
    assert full.pairs[0].already_stored == 15 and full.pairs[0].generated == 105


def test_missing_and_corrupt_images_are_counted_per_sample_errors(tmp_path):
    data = build_smoke_dataset(tmp_path / "data", 30)
    (data / "images" / "00003.png").unlink()
    (data / "images" / "00007.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    cfg = make_config(tmp_path, data_root=str(data), batch_size=4)
    result = Runner(cfg).run()
    pair = result.pair("dummy", "smoke_colours")
    assert pair.errors == 2 and pair.metric("accuracy").n == 28
    with Store(cfg.store) as store:
        errors = {r.sample_id: r.error for r in store.generations() if r.error}
    assert set(errors) == {"00003", "00007"}
    assert "00003.png" in errors["00003"] and "not found" in errors["00003"]
    assert "00007.png" in errors["00007"] and "cannot decode" in errors["00007"]
    # A rerun keeps the errors (nothing silently retried); --retry-errors redoes only those two.
    assert Runner(cfg).run().pairs[0].generated == 0
    shutil.copy(data / "images" / "00000.png", data / "images" / "00003.png")
    retried = Runner(make_config(tmp_path, data_root=str(data), retry_errors=True)).run().pairs[0]
    assert retried.generated == 2 and retried.errors == 1 and retried.metric("accuracy").n == 29


class _FlakyDummy:
    """A dummy that fails any batch containing sample 00005, to show one bad sample costs one sample."""

    def __init__(self):
        self.inner = MODELS.load("dummy")()
        self.calls = 0

    def fingerprint(self):
        return "flaky-" + self.inner.fingerprint()

    def generate(self, requests, images):
        self.calls += 1
        if any(r.sample_id == "00005" for r in requests):
            raise RuntimeError("CUDA out of memory (pretend)")
        return self.inner.generate(requests, images)

    def score_choices(self, requests, images):
        return self.inner.score_choices(requests, images)


def test_adapter_failure_is_isolated_to_the_failing_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(MODELS, "_entries", {**MODELS._entries})  # registration undone after the test
    MODELS.register("flaky-test", f"{__name__}:_FlakyDummy")
    cfg = make_config(tmp_path, models=("flaky-test",), batch_size=8)
    pair = Runner(cfg).run().pairs[0]
    assert pair.errors == 1 and pair.metric("accuracy").n == 119
    with Store(cfg.store) as store:
        [bad] = [r for r in store.generations() if r.error]
    assert bad.sample_id == "00005" and "out of memory" in bad.error


def test_unknown_names_fail_before_any_work(tmp_path):
    cfg = make_config(tmp_path, models=("nope",))
    with pytest.raises(KeyError, match="known models: .*dummy"):
        Runner(cfg).run()
    assert not Path(cfg.store).exists()


def test_settings_as_dict_covers_every_field():
    import dataclasses

    settings = GenerationSettings(max_new_tokens=5, stop=("###",))
    assert set(settings.as_dict()) == {f.name for f in dataclasses.fields(GenerationSettings)}
    assert settings.as_dict() == {**dataclasses.asdict(settings), "stop": ["###"]}
