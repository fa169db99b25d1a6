"""The leaderboard report: paper tables from a real run, numbers equal to the store's, ties, paired tests,
escaping of model outputs, determinism, roles, the drill-down cap, figures and human ratings."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.config import RunConfig
from harness.metrics import MetricValue, proportion
from harness.runner import Runner
from harness.store import Store
from reports.leaderboard import build_report
from reports.roles import RolesError, default_role, load_roles, resolve_roles
from reports.stats import bootstrap_counts, holm, mcnemar_test, paired_bootstrap, rank_with_ties
from tasks.world import build_world

TASKS = ("smoke_colours", "smoke_colours_mc", "aokvqa_mc", "gqa_testdev", "chair_short", "coco_coverage",
         "advanced_meme", "failure_caption")
ROLES = {"dummy": "MiniGPT-4", "dummy-blind": "BLIP-2"}
PROVENANCE = {"git_sha": "abc123", "package_version": "test", "host": "test"}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    world = build_world(tmp_path_factory.mktemp("world") / "w", seed=0, size="small", progress=False)
    path = tmp_path_factory.mktemp("store") / "s.sqlite"
    smoke = tuple(t for t in TASKS if t.startswith("smoke"))  # two runs: the smoke data, then the world's
    for tasks, root in ((smoke, None), (tuple(t for t in TASKS if t not in smoke), str(world))):
        config = RunConfig(models=("dummy", "dummy-blind"), tasks=tasks, store=str(path), limit=12, data_root=root,
                           progress=False)
        Runner(config, argv=["mgbench", "run"]).run()
    return path


@pytest.fixture(scope="module")
def built(store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("report")
    with Store(store_path) as store:
        index = build_report(store, out, roles=ROLES)
    return {"out": out, "html": index.read_text(encoding="utf-8"),
            "json": json.loads((out / "report.json").read_text(encoding="utf-8"))}


def copy_store(src: Path, dst: Path) -> Path:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def table(report: dict, number: int) -> dict:
    return next(t for t in report["tables"] if t["number"] == number)


def cell(t: dict, role_or_model: str, task: str, metric: str) -> dict:
    row = next(r for r in t["rows"] if role_or_model in (r["model"], r["role"]))
    index = next(i for i, c in enumerate(t["columns"]) if c["task"] == task and c["metric"] == metric)
    return row["cells"][index]


def stored(store_path: Path, model: str, task: str, metric: str) -> dict:
    with Store(store_path) as store:
        return next(m for m in store.latest_metrics() if (m["model"], m["task"], m["metric"]) == (model, task, metric))


# ----- the tables ------------------------------------------------------------------------------------------
def test_paper_tables_show_this_run_beside_the_papers_numbers(built, store_path):
    report, html = built["json"], built["html"]
    coverage = cell(table(report, 2), "dummy", "coco_coverage", "coverage")
    assert coverage["value"] == stored(store_path, "dummy", "coco_coverage", "coverage")["value"]
    assert coverage["paper"] == {"value": 3310 / 5000, "k": 3310, "n": 5000}
    assert "66.2%" in html and "3310/5000" in html
    t6 = table(report, 6)
    assert cell(t6, "dummy", "aokvqa_mc", "mc_accuracy")["paper"]["value"] == pytest.approx(0.582)
    assert cell(t6, "dummy-blind", "gqa_testdev", "accuracy")["paper"]["value"] == pytest.approx(0.424)
    assert cell(t6, "Finetune Vicuna", "aokvqa_mc", "mc_accuracy")["status"] == "not run"  # a paper-only row
    t1 = table(report, 1)
    assert cell(t1, "dummy", "advanced_meme", "request_met_human")["paper"] == {"value": 8 / 25, "k": 8, "n": 25}
    assert cell(t1, "dummy", "total", "request_met_human")["paper"] == {"value": 0.65, "k": 65, "n": 100}
    t5 = table(report, 5)
    assert cell(t5, "dummy", "chair_short", "CHAIRi")["paper"]["value"] == pytest.approx(0.072)
    assert cell(t5, "dummy-blind", "chair_short", "length_words")["paper"]["value"] == pytest.approx(6.5)
    assert cell(table(report, 4), "No Q-Former", "gqa_testdev", "accuracy")["paper"]["value"] == pytest.approx(0.334)
    k, n = coverage["k"], coverage["n"]
    assert n == 12 and f"{k}/{n}" in html
    assert coverage["low"] <= coverage["value"] <= coverage["high"]


def test_report_json_numbers_equal_the_stores(built, store_path):
    in_report = {(m["model"], task, m["metric"]): m for task, rows in built["json"]["tasks"].items() for m in rows}
    with Store(store_path) as store:
        latest = store.latest_metrics()
    assert len(latest) == len(in_report) > 0
    for row in latest:
        got = in_report[(row["model"], row["task"], row["metric"])]
        details = json.loads(row["details_json"])
        assert (got["value"], got["n"], got["low"], got["high"], got["k"], got["run_id"]) == (
            row["value"], row["n"], row["ci_low"], row["ci_high"], details.get("k"), row["run_id"])


def test_per_item_outcomes_recomputed_from_the_store_agree_with_the_metrics(built):
    report = built["json"]
    for t in report["tables"]:
        for row in t["rows"]:
            assert not any("check" in c for c in row["cells"]), (t["number"], row["model"])
    statuses = {task: p["status"] for task, p in report["per_item"].items()}
    assert all(status == "" for status in statuses.values()), statuses
    test = next(p for p in report["paired_tests"]["smoke_colours"] if p["metric"] == "accuracy")["tests"][0]
    assert {test["a"], test["b"]} == {"dummy", "dummy-blind"} and test["n"] == 12
    assert test["method"].startswith("McNemar") and 0 <= test["p"] <= 1
    assert test["only_a"] + test["only_b"] + test["both"] + test["neither"] == 12
    chair = report["paired_tests"]["chair_short"]
    assert any(p["tests"] and p["tests"][0]["method"].startswith("paired bootstrap") for p in chair)


def test_human_tables_label_the_judge_proxy_and_await_ratings(built, store_path):
    t1, html = table(built["json"], 1), built["html"]
    assert t1["judge_labels"] == ["offline rule judge (not ChatGPT)"]
    assert cell(t1, "dummy", "advanced_meme", "request_met_human")["status"] == "awaiting ratings"
    assert cell(t1, "dummy", "advanced_meme", "request_met_judge_proxy")["value"] is not None
    assert "offline rule judge (not ChatGPT)" in html and "awaiting ratings" in html
    assert f"mgbench rate create --store {store_path}" in html and f"mgbench rate serve --store {store_path}" in html


def test_ratings_fill_the_human_column(store_path, tmp_path):
    campaign = pytest.importorskip("human_eval.campaign")
    from human_eval.ratings import record_rating

    path = copy_store(store_path, tmp_path / "rated.sqlite")
    with Store(path) as store:
        campaign.create_campaign(store, campaign.CampaignSpec(
            name="c1", tasks=("advanced_meme",), models=("dummy",), raters=("r1", "r2", "r3")))
        items = store.conn.execute("SELECT item_id FROM rating_items WHERE campaign='c1' ORDER BY item_id").fetchall()
        for i, (item_id,) in enumerate(items):  # the first 5 items: majority "yes" (2 of 3); the rest "no"
            for rater, verdict in zip(("r1", "r2", "r3"), ("yes", "yes", "no") if i < 5 else ("no", "no", "yes"),
                                      strict=True):
                record_rating(store.conn, "c1", rater, item_id, verdict)
        build_report(store, tmp_path / "out", roles=ROLES)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    human = cell(table(report, 1), "dummy", "advanced_meme", "request_met_human")
    assert (human["k"], human["n"], human["value"]) == (5, len(items), 5 / len(items))
    assert "campaign c1" in human["source"]
    html = (tmp_path / "out" / "index.html").read_text()
    assert "human ratings: majority <b>yes</b>" in html


# ----- statistics ------------------------------------------------------------------------------------------
def test_ties_marked_on_a_constructed_case(tmp_path):
    ranks = rank_with_ties([("a", 0.60, 0.55, 0.65), ("b", 0.58, 0.53, 0.63), ("c", 0.30, 0.25, 0.35),
                            ("d", None, None, None)], higher_is_better=True)
    assert ranks["a"] == {"rank": 1, "tied": True, "overlaps": ["b"]}
    assert ranks["b"] == {"rank": 1, "tied": True, "overlaps": ["a"]}
    assert ranks["c"] == {"rank": 3, "tied": False, "overlaps": []} and "d" not in ranks
    lower = rank_with_ties([("a", 0.1, 0.05, 0.15), ("b", 0.3, 0.25, 0.35)], higher_is_better=False)
    assert lower["a"]["rank"] == 1 and lower["b"]["rank"] == 2
    with Store(tmp_path / "tie.sqlite") as store:  # the same case through the report
        run = store.start_run(config={}, config_hash="h", seed=0, argv=["test"], provenance=PROVENANCE)
        for model, k in (("minigpt4-a", 300), ("minigpt4-b", 290), ("minigpt4-c", 150)):
            store.write_metrics(run, model, "coco_coverage", [proportion("coverage", k, 500)])
        build_report(store, tmp_path / "out")
    t2 = table(json.loads((tmp_path / "out" / "report.json").read_text()), 2)
    got = {m: (cell(t2, m, "coco_coverage", "coverage")["rank"], cell(t2, m, "coco_coverage", "coverage")["tied"])
           for m in ("minigpt4-a", "minigpt4-b", "minigpt4-c")}
    assert got == {"minigpt4-a": (1, True), "minigpt4-b": (1, True), "minigpt4-c": (3, False)}
    html = (tmp_path / "out" / "index.html").read_text()
    table2 = html.split('id="paper-table-2"')[1].split("</table>")[0]
    assert table2.count(">#1=</span>") == 2 and table2.count(">#3</span>") == 1


def test_mcnemar_on_hand_computed_cases():
    # 5 both right, 10 only A right, 2 only B right, 3 neither: 12 discordant pairs, so the exact test:
    # p = 2 * P(X <= 2 | X ~ Binomial(12, 1/2)) = 2 * (1 + 12 + 66) / 4096 = 158 / 4096.
    a = [1] * 5 + [1] * 10 + [0] * 2 + [0] * 3
    b = [1] * 5 + [0] * 10 + [1] * 2 + [0] * 3
    result = mcnemar_test(a, b)
    assert (result["only_a"], result["only_b"], result["both"], result["neither"]) == (10, 2, 5, 3)
    assert result["method"] == "McNemar exact" and result["p"] == pytest.approx(158 / 4096, abs=1e-12)
    # 30 vs 10 discordant: chi-square with continuity correction (|30 - 10| - 1)^2 / 40 = 9.025, 1 d.o.f.
    result = mcnemar_test([1] * 30 + [0] * 10, [0] * 30 + [1] * 10)
    assert result["statistic"] == pytest.approx(9.025)
    assert result["p"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)), rel=1e-9)
    assert mcnemar_test([1, 0, 1], [1, 0, 1])["p"] == 1.0


def test_paired_bootstrap_and_holm():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    ones = np.ones(200)
    counts = bootstrap_counts(200, 500, "test")
    assert counts.shape == (500, 200) and (counts.sum(axis=1) == 200).all()
    same = paired_bootstrap(x, ones, x, ones, counts)
    assert same["p"] == 1.0 and same["diff_low"] == same["diff_high"] == 0.0
    shifted = paired_bootstrap(x + 0.5, ones, x, ones, counts)
    assert shifted["p"] < 0.01 and shifted["diff_low"] == pytest.approx(0.5) == shifted["diff_high"]
    adjusted = holm([0.01, 0.04, 0.03, None])  # 3 x 0.01; max(0.03, 2 x 0.03); max(0.06, 1 x 0.04)
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and adjusted[3] is None


# ----- safety, determinism, options ------------------------------------------------------------------------
def test_model_outputs_are_escaped(store_path, tmp_path):
    path = copy_store(store_path, tmp_path / "evil.sqlite")
    evil = '<script>alert("owned")</script><img src=x onerror=alert(1)>'
    with Store(path) as store:
        store.conn.execute("UPDATE generations SET text=? WHERE model='dummy' AND task='advanced_meme'", (evil,))
        index = build_report(store, tmp_path / "out", roles=ROLES)
    html = index.read_text()
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert html.count("<script") == 1  # the report's own sorting script


def test_the_same_store_gives_byte_identical_files(store_path, tmp_path, built):
    with Store(store_path) as store:
        build_report(store, tmp_path / "again", roles=ROLES)
    for name in ("index.html", "report.json"):
        assert (tmp_path / "again" / name).read_bytes() == (built["out"] / name).read_bytes(), name


def test_self_contained_with_inline_figures(built):
    html, report = built["html"], built["json"]
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert "<link" not in html and 'src="data:image/svg+xml;base64,' in html
    figures = {f["name"]: f for f in report["figures"]}
    assert figures["chair_length"]["data"]["points"] and figures["success"]["data"]
    assert "stage-1" in figures["failures"]["note"]  # no stage-1 model: skipped, with a note


def test_failure_figure_when_a_stage1_model_is_mapped(store_path, tmp_path):
    with Store(store_path) as store:
        build_report(store, tmp_path / "out", roles={"dummy-blind": "stage-1 only", "dummy": "MiniGPT-4"})
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    failures = next(f for f in report["figures"] if f["name"] == "failures")
    assert failures["note"] == "" and {b["stage"] for b in failures["data"]} == {"stage 1", "stage 2"}
    assert [r["role"] for r in table(report, 3)["rows"]] == ["stage-1 only", "MiniGPT-4"]


def test_drilldown_is_capped_seeded_and_stated(store_path, tmp_path, built):
    def shown(report: dict) -> dict[str, list[str]]:
        return {s["task"]: [x["sample_id"] for x in s["samples"]] for s in report["drilldown"]}

    with Store(store_path) as store:
        build_report(store, tmp_path / "a", roles=ROLES, samples_per_task=5)
        build_report(store, tmp_path / "b", roles=ROLES, samples_per_task=5, seed=1)
    a, b = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("a", "b"))
    assert all(s["shown"] == 5 and s["total"] == 12 for s in a["drilldown"])
    assert "showing 5 of 12 samples" in (tmp_path / "a" / "index.html").read_text()
    assert all(set(ids) <= set(shown(built["json"])[task]) for task, ids in shown(a).items())
    assert shown(a) != shown(b)
    sample = a["drilldown"][0]["samples"][0]
    assert {o["model"] for o in sample["outputs"]} == {"dummy", "dummy-blind"}


def test_drilldown_sample_shows_image_prompt_output_and_verdict(built):
    html = built["html"]
    assert 'src="data:image/jpeg;base64,' in html
    assert "judge offline-rule-judge (v" in html and "raw answer:" in html
    assert "Explain why this meme is funny." in html


def test_run_metadata(built, store_path):
    report = built["json"]
    smoke, world = report["runs"]
    assert world["config"]["data_root"] and smoke["config"]["data_root"] is None
    run = world
    assert run["config_hash"] and run["seed"] == 0 and run["config"]["judge"] == "rule"
    assert set(report["models"]) == {"dummy", "dummy-blind"}
    assert all(len(fp["fingerprint"]) == 32 for fps in report["models"].values() for fp in fps)
    assert report["judges"][0]["label"] == "offline rule judge (not ChatGPT)" and report["judges"][0]["version"]
    assert run["config_hash"] in built["html"]


def test_roles_by_name_pattern_and_override_file(tmp_path):
    expected = {"minigpt4-tiny-random": "MiniGPT-4", "minigpt4-noqformer-tiny-random": "No Q-Former",
                "minigpt4-3layers-tiny-random": "+ 3 layers", "minigpt4-ftqformer": "+ finetune Q-Former",
                "minigpt4-locna": "LocNa", "blip2-ft": "BLIP-2 FT", "blip2-flant5-ft-tiny": "BLIP-2 FT",
                "minigpt4-lora-tiny-random": "Finetune Vicuna", "minigpt4-ftvicuna": "Finetune Vicuna",
                "minigpt4-stage1": "stage-1 only", "blip2-flant5-tiny-random": "BLIP-2", "blip2": "BLIP-2",
                "dummy": None}
    assert {name: default_role(name) for name in expected} == expected
    roles = tmp_path / "roles.yaml"
    roles.write_text("dummy: MiniGPT-4\nminigpt4-tiny-random: stage1\nblip2: none\n")
    assert load_roles(roles) == {"dummy": "MiniGPT-4", "minigpt4-tiny-random": "stage-1 only", "blip2": None}
    resolved = resolve_roles(["dummy", "blip2", "minigpt4-tiny-random", "blip2-ft"], roles)
    assert resolved == {"blip2": None, "blip2-ft": "BLIP-2 FT", "dummy": "MiniGPT-4",
                        "minigpt4-tiny-random": "stage-1 only"}
    roles.write_text("dummy: GPT-5\n")
    with pytest.raises(RolesError, match="unknown role 'GPT-5'"):
        load_roles(roles)


def test_cli_report_command(store_path, tmp_path, capsys):
    assert main(["report", "--store", str(store_path), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "index.html").exists() and (tmp_path / "cli" / "report.json").exists()
    assert "leaderboard:" in capsys.readouterr().out


def test_empty_store_gives_a_report(tmp_path):
    with Store(tmp_path / "empty.sqlite") as store:
        store.write_metrics(store.start_run(config={}, config_hash="h", seed=0, argv=[], provenance=PROVENANCE),
                            "m", "unregistered_task", [MetricValue("score", 0.5, 10)])
        index = build_report(store, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert index.exists() and report["per_item"]["unregistered_task"]["status"].startswith("task not loadable")
    assert all(not t["rows"] or all(r["model"] is None for r in t["rows"]) for t in report["tables"])
