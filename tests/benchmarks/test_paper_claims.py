"""The paper's claims as tests against the configured zoo (`pytest -m benchmark`).

By default the zoo is the tiny one built by `mgbench zoo build` on the synthetic world; `--mgbench-config
FILE` points at a real zoo (its `roles` map the paper's rows to model names, its `data_root` at real data).
Each test runs what it needs through the session's runner (stored generations are reused), prints its
figures, and the session ends by writing the leaderboard report.
"""

from __future__ import annotations

import pytest

from model_zoo.zoo_models import default_zoo_dir

LIMIT = 100  # samples per task for the tiny zoo; a real config's `limit` wins
# A-OKVQA is ranked, not generated (four forward passes a question): the synthetic val split's 800 questions cost
# seconds, and at n=100 the interval is +-0.09 wide, too wide to tell "well above 25%" from chance
AOKVQA_LIMIT = 800
# CHAIRi counts hallucinated object mentions: a tiny model's short captions mention ~40 objects in 100 images, an
# interval +-0.15 wide, so Table 5 uses the synthetic test split's 400 images
CHAIR_LIMIT = 400
# Coverage is a yes/no verdict per image: at the paper's 100 images the interval is +-0.09 wide, and on the same two
# tiny models the order flipped between 100 images (0.26 vs 0.25) and the test split's 400 (0.245 vs 0.270)
COVERAGE_LIMIT = 400
# The zoo under test is the user's (`mgbench zoo build`), read before tests/conftest.py points the cache
# at a session temp folder (this module is imported at collection, before that fixture runs).
USER_ZOO = default_zoo_dir()


def run(runner, roles: list[str], tasks: list[str], limit: int = LIMIT):
    config = runner.config
    names = [config.roles[r] for r in roles]
    if config.limit is None:  # the tiny zoo: a subset, and the user's built zoo unless the config names one
        import dataclasses

        from harness.runner import Runner
        from harness.train.zoo import MODELS

        options = {m: dict(o) for m, o in config.model_options.items()}
        for name in names:
            if name in MODELS:
                options.setdefault(name, {}).setdefault("zoo", str(USER_ZOO))
        runner = Runner(dataclasses.replace(config, limit=limit, model_options=options), argv=runner.argv)
    return runner.run(models=names, tasks=tasks), dict(zip(roles, names, strict=True))


def show(label: str, m) -> str:
    ci = f"[{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None else ""
    return f"{label}: {m.value:.3f} {ci} (n={m.n})"


@pytest.mark.benchmark
def test_table2_minigpt4_covers_more_captions_than_blip2(mgbench_runner, capsys):
    result, names = run(mgbench_runner, ["minigpt4", "blip2"], ["coco_coverage"], limit=COVERAGE_LIMIT)
    ours = result.pair(names["minigpt4"], "coco_coverage").metric("coverage")
    blip2 = result.pair(names["blip2"], "coco_coverage").metric("coverage")
    with capsys.disabled():
        print(f"\nTable 2 coverage ({ours.details['judge_label'] or ours.details['judge']}): "
              f"{show('MiniGPT-4', ours)} vs {show('BLIP-2', blip2)}; paper 66.2% vs 27.5%")
        for role in ("minigpt4", "blip2"):  # where it is won: the paper's reading is multi-object references
            pair = result.pair(names[role], "coco_coverage")
            one, several = pair.metric("coverage_one_object"), pair.metric("coverage_several_objects")
            print(f"  {role}: references naming one object {one.details['k']}/{one.n}, two or more "
                  f"{several.details['k']}/{several.n}; object categories named per answer "
                  f"{pair.metric('objects_named').value:.2f}")
    assert ours.value > blip2.value


@pytest.mark.benchmark
def test_table3_stage2_lowers_failures(mgbench_runner, capsys):
    result, names = run(mgbench_runner, ["stage1", "minigpt4"], ["failure_caption", "failure_poem"])
    lower = {}
    for task, paper in (("failure_caption", "35% -> 2%"), ("failure_poem", "32% -> 1%")):
        before = result.pair(names["stage1"], task).metric("failure_rate_judge_proxy")
        after = result.pair(names["minigpt4"], task).metric("failure_rate_judge_proxy")
        with capsys.disabled():
            print(f"\nTable 3 {task} (judge proxy): {show('stage 1', before)} -> {show('stage 2', after)}; "
                  f"paper {paper}")
        lower[task] = after.value < before.value
    assert all(lower.values()), f"stage 2 does not fail less often on: {[t for t, ok in lower.items() if not ok]}"


@pytest.mark.benchmark
def test_table4_6_aokvqa_well_above_chance_and_no_qformer_stays_close(mgbench_runner, capsys):
    result, names = run(mgbench_runner, ["minigpt4", "no_qformer"], ["aokvqa_mc_ll"], limit=AOKVQA_LIMIT)
    ours = result.pair(names["minigpt4"], "aokvqa_mc_ll").metric("mc_accuracy")
    no_q = result.pair(names["no_qformer"], "aokvqa_mc_ll").metric("mc_accuracy")
    with capsys.disabled():
        print(f"\nTable 4 A-OKVQA MC (ranked): {show('MiniGPT-4', ours)}, {show('No Q-Former', no_q)}; "
              f"chance 0.25; paper 58.2 / 56.9")
    assert ours.ci_low > 0.25  # well above the 25% chance rate
    assert no_q.ci_high >= ours.ci_low and ours.ci_high >= no_q.ci_low  # intervals overlap: close


@pytest.mark.benchmark
def test_table5_long_descriptions_hallucinate_more_than_short(mgbench_runner, capsys):
    result, names = run(mgbench_runner, ["minigpt4"], ["chair_long", "chair_short"], limit=CHAIR_LIMIT)
    long = result.pair(names["minigpt4"], "chair_long")
    short = result.pair(names["minigpt4"], "chair_short")
    with capsys.disabled():
        print(f"\nTable 5 CHAIRi: {show('long', long.metric('CHAIRi'))} ({long.metric('length_words').value:.1f} "
              f"words) vs {show('short', short.metric('CHAIRi'))} ({short.metric('length_words').value:.1f} words);"
              f" paper 9.6 (175) vs 7.2 (28.8)")
    assert long.metric("length_words").value > short.metric("length_words").value
    assert long.metric("CHAIRi").value >= short.metric("CHAIRi").value
