"""Tests of the `mgbench` command line (harness.cli).

Most tests call `harness.cli.main([...])` in-process and read its output with capsys; the last ones run
the installed console script in a subprocess. Every test keeps its store, cache and outputs under
tmp_path (generated data goes to $MGBENCH_CACHE) and checks the store itself, not only what is printed:
- help and the model/task listings; unknown names (exit 2, known names listed, no store created);
- run -> show; a second run resumes everything and generates nothing;
- --limit/--seed draw seeded subsets, recorded in run_samples; --config precedence (CLI > file > defaults);
- secrets on the command line never reach runs.argv; malformed --model-option is an argparse error;
- export (one JSONL per task and model), report (index.html + report.json, HTML escaped);
- show/export/report on a missing store: exit 2, and no store file appears.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from harness import provenance
from harness.cli import EXPORT_SCHEMA_VERSION, main
from harness.metrics import MetricValue
from harness.registry import MODELS, TASKS
from harness.store import SCHEMA_VERSION, Store
from model_zoo.dummy import DummyAdapter

COMMANDS = ("run", "show", "export", "report", "demo", "world", "metric", "judge", "train", "curate", "rate", "zoo",
            "models",
            "tasks")
SECRET = "sk-abcdefghijklmnop"
MGBENCH = Path(sys.executable).with_name("mgbench")  # the console script installed next to this python


# ----- fixtures and helpers ------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Generated data under tmp_path, and never a torchrun environment leaking in."""
    monkeypatch.setenv("MGBENCH_CACHE", str(tmp_path / "cache"))
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "results.sqlite"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv) -> (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(capsys: pytest.CaptureFixture[str], store: Path, *argv: str) -> tuple[str, list[dict[str, str]]]:
    """`mgbench run --store STORE --no-progress ARGV...`; returns the run id and the printed table."""
    code, out, err = cli(capsys, "run", "--store", str(store), "--no-progress", *argv)
    assert code == 0, err
    match = re.match(r"run (\w+) -> (.+)", out.splitlines()[0])
    assert match, out
    assert match.group(2) == str(store)
    (table,) = parse_tables(out)
    return match.group(1), table


def parse_tables(text: str) -> list[list[dict[str, str]]]:
    """The tables printed by harness.cli.format_table, as lists of {header: cell}."""
    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if i == 0 or not line.strip() or set(line) - {"-", " "}:
            continue
        spans = [m.span() for m in re.finditer(r"-+", line)]
        spans[-1] = (spans[-1][0], None)  # the last column runs to the end of the line

        def cells(row: str, spans=spans) -> list[str]:
            return [row[a:b].strip() for a, b in spans]

        headers = cells(lines[i - 1])
        rows = []
        for row in lines[i + 1:]:
            if not row.strip():
                break
            rows.append(dict(zip(headers, cells(row), strict=True)))
        tables.append(rows)
    return tables


def query(path: Path, sql: str, *params: object) -> list[tuple]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def run_row(path: Path, run_id: str) -> dict:
    with Store(path) as store:
        (row,) = [r for r in store.runs() if r["run_id"] == run_id]
    return row


def all_sample_ids(tmp_path: Path) -> list[str]:
    questions = tmp_path / "cache" / "smoke_colours" / "v1-n120" / "questions.json"
    return sorted(rec["sample_id"] for rec in json.loads(questions.read_text()))


# ----- help and listings ---------------------------------------------------------------------------------
def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^ {4}(\w+) ", out, re.MULTILINE)
    assert listed == list(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_its_own_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: mgbench {command}")


@pytest.mark.parametrize(
    ("command", "registry", "columns", "builtins"),
    [
        ("models", MODELS, ["model", "adapter"], {"dummy", "dummy-blind"}),
        ("tasks", TASKS, ["task", "implementation"], {"smoke_colours", "smoke_colours_mc"}),
    ],
)
def test_listings_show_the_registered_names(capsys: pytest.CaptureFixture[str], command: str, registry,
                                            columns: list[str], builtins: set[str]) -> None:
    code, out, _ = cli(capsys, command)
    assert code == 0
    (table,) = parse_tables(out)
    assert [list(row) for row in table] == [columns] * len(table)
    names = [row[columns[0]] for row in table]
    assert names == registry.names() and builtins <= set(names)
    assert [row[columns[1]] for row in table] == [registry.target(n) for n in names]


@pytest.mark.parametrize(
    ("flag", "value", "known"),
    [("--models", "dummy,no-such-model", MODELS), ("--tasks", "no_such_task", TASKS)],
)
def test_unknown_name_is_exit_2_and_lists_the_known_names(
    capsys: pytest.CaptureFixture[str], store_path: Path, flag: str, value: str, known
) -> None:
    code, out, err = cli(capsys, "run", flag, value, "--store", str(store_path), "--no-progress")
    assert code == 2
    assert "no-such-model" in err or "no_such_task" in err
    for name in known.names():
        assert name in err
    assert not store_path.exists()  # refused before any work


# ----- run, show, resume ---------------------------------------------------------------------------------
def test_run_then_show(capsys: pytest.CaptureFixture[str], store_path: Path) -> None:
    run_id, table = run_cli(capsys, store_path, "--models", "dummy,dummy-blind", "--limit", "12")
    assert {(r["model"], r["task"], r["metric"]) for r in table} == {
        (m, "smoke_colours", metric) for m in ("dummy", "dummy-blind") for metric in ("accuracy", "errors")
    }
    for row in table:
        assert (row["n"], row["resumed"], row["new"]) == ("12", "0", "12")
    printed = {(r["model"], r["metric"]): r["value"] for r in table}
    assert printed[("dummy", "errors")] == "0"
    # The dummy looks at the image; the blind one guesses: the table must tell them apart.
    assert float(printed[("dummy", "accuracy")]) > float(printed[("dummy-blind", "accuracy")])

    code, out, _ = cli(capsys, "show", "--store", str(store_path))
    assert code == 0
    assert out.splitlines()[0] == f"store {store_path} (schema {SCHEMA_VERSION}): 1 run(s), 24 generation(s)"
    runs, metrics = parse_tables(out)
    assert [(r["run"], r["status"], r["models"], r["tasks"], r["limit"]) for r in runs] == [
        (run_id, "finished", "dummy,dummy-blind", "smoke_colours", "12")
    ]
    assert {(r["model"], r["metric"]): r["value"] for r in metrics} == printed
    assert {r["run"] for r in metrics} == {run_id}
    with Store(store_path) as store:
        stored = {(m["model"], m["metric"]): m["value"] for m in store.latest_metrics()}
    assert float(printed[("dummy", "accuracy")]) == pytest.approx(stored[("dummy", "accuracy")], abs=5e-5)


def test_second_run_resumes_everything(capsys: pytest.CaptureFixture[str], store_path: Path) -> None:
    args = ("--models", "dummy,dummy-blind", "--tasks", "smoke_colours,smoke_colours_mc", "--limit", "15")
    first_id, first = run_cli(capsys, store_path, *args)
    generations = query(store_path, "SELECT key, text, created_at, run_id FROM generations ORDER BY key")
    assert len(generations) == 2 * 2 * 15

    second_id, second = run_cli(capsys, store_path, *args)
    assert second_id != first_id
    assert len(second) == len(first) == 8
    for row in second:
        assert (row["resumed"], row["new"]) == ("15", "0")
    value = {(r["model"], r["task"], r["metric"]): r["value"] for r in first}
    assert {(r["model"], r["task"], r["metric"]): r["value"] for r in second} == value  # scored from the store

    assert query(store_path, "SELECT key, text, created_at, run_id FROM generations ORDER BY key") == generations
    assert query(store_path, "SELECT model, task, sample_id, count(*) FROM generations "
                             "GROUP BY model, task, sample_id HAVING count(*) > 1") == []
    assert query(store_path, "SELECT run_id, status FROM runs ORDER BY started_at") == [
        (first_id, "finished"), (second_id, "finished")
    ]


def test_limit_draws_seeded_subsets(capsys: pytest.CaptureFixture[str], store_path: Path, tmp_path: Path) -> None:
    run1, _ = run_cli(capsys, store_path, "--limit", "10", "--seed", "1")
    run2, table2 = run_cli(capsys, store_path, "--limit", "10", "--seed", "2")
    with Store(store_path) as store:
        subset1 = store.run_samples(run1, "smoke_colours")
        subset2 = store.run_samples(run2, "smoke_colours")
        made_by = {run: sorted(r.sample_id for r in store.generations() if r.run_id == run) for run in (run1, run2)}
    everything = all_sample_ids(tmp_path)
    assert len(everything) == 120
    assert len(subset1) == len(subset2) == 10
    assert set(subset1) <= set(everything) and set(subset2) <= set(everything)
    assert subset1 != subset2
    assert subset1 != everything[:10] and subset2 != everything[:10]
    # What was generated is exactly the subset; the second run only made what the first had not.
    overlap = set(subset1) & set(subset2)
    assert made_by[run1] == subset1
    assert made_by[run2] == sorted(set(subset2) - overlap)
    accuracy = next(r for r in table2 if r["metric"] == "accuracy")
    assert (accuracy["resumed"], accuracy["new"]) == (str(len(overlap)), str(10 - len(overlap)))
    assert [r[0] for r in query(store_path, "SELECT seed FROM runs ORDER BY started_at")] == [1, 2]

    run3, _ = run_cli(capsys, store_path, "--limit", "10", "--seed", "1")  # same seed, same subset
    with Store(store_path) as store:
        assert store.run_samples(run3, "smoke_colours") == subset1


# ----- configuration ------------------------------------------------------------------------------------
def test_config_file_precedence(capsys: pytest.CaptureFixture[str], store_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "models: [dummy, dummy-blind]\n"
        "batch_size: 3\n"
        "limit: 6\n"
        "seed: 4\n"
        "model_options:\n  dummy: {seed: 3, delay_s: 0}\n",
        encoding="utf-8",
    )
    run_id, table = run_cli(capsys, store_path, "--config", str(config), "--limit", "8",
                            "--model-option", "dummy.seed=5")
    stored = json.loads(run_row(store_path, run_id)["config_json"])
    assert stored["models"] == ["dummy", "dummy-blind"]  # from the file
    assert stored["batch_size"] == 3  # from the file
    assert stored["seed"] == 4  # from the file
    assert stored["limit"] == 8  # the CLI flag wins
    assert stored["model_options"] == {"dummy": {"seed": 5, "delay_s": 0}}  # merged per key, CLI wins
    assert stored["tasks"] == ["smoke_colours"]  # default
    assert stored["progress"] is False
    assert run_row(store_path, run_id)["seed"] == 4
    with Store(store_path) as store:
        assert len(store.run_samples(run_id, "smoke_colours")) == 8
    assert {r["model"] for r in table} == {"dummy", "dummy-blind"}
    assert {r["n"] for r in table} == {"8"}


def test_config_file_with_unknown_field_is_exit_2(capsys: pytest.CaptureFixture[str], store_path: Path,
                                                  tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("models: [dummy]\nbatchsize: 3\n", encoding="utf-8")
    code, _, err = cli(capsys, "run", "--config", str(config), "--store", str(store_path), "--no-progress")
    assert code == 2
    assert str(config) in err and "batchsize" in err
    assert not store_path.exists()


def test_model_option_value_is_parsed(capsys: pytest.CaptureFixture[str], store_path: Path) -> None:
    run_id, _ = run_cli(capsys, store_path, "--limit", "3", "--model-option", "dummy.delay_s=0",
                        "--model-option", "dummy.error_rate=0.5")
    options = json.loads(run_row(store_path, run_id)["config_json"])["model_options"]
    assert options == {"dummy": {"delay_s": 0, "error_rate": 0.5}}  # YAML-typed, not strings


@pytest.mark.parametrize("bad", ["foo", "dummy.seed", "dummy=3", ".seed=3", "dummy.=3"])
def test_malformed_model_option_is_an_argparse_error(capsys: pytest.CaptureFixture[str], store_path: Path,
                                                     bad: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--store", str(store_path), "--model-option", bad])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--model-option" in err and "expected MODEL.KEY=VALUE" in err and repr(bad) in err
    assert not store_path.exists()


# ----- secrets on the command line -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--api-key", "X1"], ["--api-key", "***"]),
        (["--api-key=X1"], ["--api-key=***"]),
        (["--token=Y1"], ["--token=***"]),
        (["--hf-token", "Y1", "--limit", "5"], ["--hf-token", "***", "--limit", "5"]),
        (["OPENAI_API_KEY=Z1"], ["OPENAI_API_KEY=***"]),
        (["--password", "hunter2"], ["--password", "***"]),
        ([SECRET], ["***"]),
        (["hf_abcdefghijkl"], ["***"]),
        (["--model-option", f"dummy.api_key={SECRET}"], ["--model-option", "dummy.api_key=***"]),
        (["mgbench", "run", "--models", "dummy", "--limit", "10", "--seed", "1"],
         ["mgbench", "run", "--models", "dummy", "--limit", "10", "--seed", "1"]),
    ],
)
def test_redact_argv(argv: list[str], expected: list[str]) -> None:
    assert provenance.redact_argv(argv) == expected


# Regression: `--model-option=dummy.api_key=sk-...` (the `--opt=value` spelling of a non-secret option
# whose value holds a secret) once kept the secret and hid the next, innocent, argument instead.
def test_redact_argv_equals_spelling_of_a_secret_model_option() -> None:
    out = provenance.redact_argv([f"--model-option=dummy.api_key={SECRET}", "--limit", "5"])
    assert not any(SECRET in arg for arg in out)
    assert out[1:] == ["--limit", "5"]


class KeyedDummyAdapter(DummyAdapter):
    """The dummy model with an `api_key` option, as an adapter for a hosted model would have."""

    def __init__(self, api_key: str | None = None, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.api_key = api_key


@pytest.fixture
def keyed_model(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(MODELS._entries, "dummy-keyed", f"{__name__}:KeyedDummyAdapter")
    return "dummy-keyed"


def test_run_never_stores_a_secret_in_argv(capsys: pytest.CaptureFixture[str], store_path: Path,
                                           keyed_model: str) -> None:
    run_id, _ = run_cli(capsys, store_path, "--models", keyed_model, "--limit", "3",
                        "--model-option", f"{keyed_model}.api_key={SECRET}", "--model-option", "dummy.seed=1")
    row = run_row(store_path, run_id)
    assert row["status"] == "finished"
    argv = json.loads(row["argv"])
    assert SECRET not in row["argv"]
    assert argv[:2] == ["mgbench", "run"]
    assert f"{keyed_model}.api_key=***" in argv
    assert "dummy.seed=1" in argv  # ordinary options are kept as typed


def test_secret_model_option_for_the_dummy_is_refused_without_leaking(capsys: pytest.CaptureFixture[str],
                                                                      store_path: Path) -> None:
    # The stock dummy has no api_key option: the run is refused before any store is written, and the
    # error names the option but never echoes its value.
    code, out, err = cli(capsys, "run", "--store", str(store_path), "--no-progress", "--limit", "3",
                         "--model-option", f"dummy.api_key={SECRET}")
    assert code == 2 and "api_key" in err
    assert SECRET not in out + err
    assert not store_path.exists()


# Regression: an option the model's constructor does not accept (a typo like `dummy.sed=1`) once escaped
# as a raw TypeError after a run row was written; now it is "mgbench: error: ..." (exit 2) before any work.
def test_unknown_model_option_is_a_clean_error(capsys: pytest.CaptureFixture[str], store_path: Path) -> None:
    code, _, err = cli(capsys, "run", "--store", str(store_path), "--no-progress", "--limit", "3",
                       "--model-option", "dummy.sed=1")
    assert code == 2
    assert "sed" in err


# Regression: argv was redacted, but the same secret was stored in clear in runs.config_json
# (model_options), and `mgbench report` copied it into report.json.
def test_a_secret_model_option_is_stored_nowhere(capsys: pytest.CaptureFixture[str], store_path: Path,
                                                 keyed_model: str, tmp_path: Path) -> None:
    run_cli(capsys, store_path, "--models", keyed_model, "--limit", "3",
            "--model-option", f"{keyed_model}.api_key={SECRET}")
    assert cli(capsys, "report", "--store", str(store_path), "--out", str(tmp_path / "report"))[0] == 0
    (row,) = query(store_path, "SELECT * FROM runs")
    assert not any(SECRET in str(value) for value in row)
    assert SECRET not in (tmp_path / "report" / "report.json").read_text()


# ----- export and report --------------------------------------------------------------------------------
def test_export_writes_one_jsonl_per_task_and_model(capsys: pytest.CaptureFixture[str], store_path: Path,
                                                    tmp_path: Path) -> None:
    run_id, _ = run_cli(capsys, store_path, "--models", "dummy,dummy-blind",
                        "--tasks", "smoke_colours,smoke_colours_mc", "--limit", "10")
    out = tmp_path / "export"
    code, stdout, _ = cli(capsys, "export", "--store", str(store_path), "--out", str(out))
    assert code == 0
    expected = {f"{t}__{m}.jsonl": (t, m) for t in ("smoke_colours", "smoke_colours_mc")
                for m in ("dummy", "dummy-blind")}
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)  # and no temp files left behind
    assert sorted(stdout.splitlines()) == sorted(f"{out / name}\t10 records" for name in expected)
    with Store(store_path) as store:
        keys = {r.key for r in store.generations()}
        selected = {t: store.run_samples(run_id, t) for t in ("smoke_colours", "smoke_colours_mc")}
    exported_keys = set()
    for name, (task, model) in expected.items():
        records = [json.loads(line) for line in (out / name).read_text(encoding="utf-8").splitlines()]
        assert len(records) == 10
        assert {r["schema_version"] for r in records} == {EXPORT_SCHEMA_VERSION}
        assert {(r["task"], r["model"], r["run_id"]) for r in records} == {(task, model, run_id)}
        assert sorted(r["sample_id"] for r in records) == selected[task]
        for r in records:
            assert r["error"] is None and r["prompt"]
            if task == "smoke_colours_mc":
                assert len(r["choices"]) == len(r["choice_logprobs"]) == 4
            else:
                assert r["text"] and r["choice_logprobs"] is None
        exported_keys |= {r["key"] for r in records}
    assert exported_keys == keys and len(keys) == 40

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert cli(capsys, "export", "--store", str(store_path), "--out", str(out))[0] == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # re-export is identical


def test_export_of_an_empty_store(capsys: pytest.CaptureFixture[str], store_path: Path, tmp_path: Path) -> None:
    Store(store_path).close()
    code, out, err = cli(capsys, "export", "--store", str(store_path), "--out", str(tmp_path / "export"))
    assert code == 0
    assert out == "" and "no generations to export" in err
    assert list((tmp_path / "export").iterdir()) == []


def test_report_writes_html_and_json(capsys: pytest.CaptureFixture[str], store_path: Path,
                                     tmp_path: Path) -> None:
    run_id, table = run_cli(capsys, store_path, "--models", "dummy,dummy-blind", "--limit", "20")
    out = tmp_path / "report"
    code, stdout, _ = cli(capsys, "report", "--store", str(store_path), "--out", str(out))
    assert code == 0
    assert stdout.strip() == f"leaderboard: {(out / 'index.html').resolve()}"
    html = (out / "index.html").read_text(encoding="utf-8")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))

    rows = report["tasks"]["smoke_colours"]
    accuracy = [r for r in rows if r["metric"] == "accuracy"]
    assert [r["value"] for r in accuracy] == sorted((r["value"] for r in accuracy), reverse=True)  # best first
    with Store(store_path) as store:
        latest = {(m["model"], m["metric"]): m["value"] for m in store.latest_metrics()}
    assert {(r["model"], r["metric"]): r["value"] for r in rows} == latest
    assert [r["run_id"] for r in report["runs"]] == [run_id]
    for r in accuracy:
        assert f"<td>{r['model']}</td>" in html
        assert f"{r['value']:.4f}" in html
        printed = next(t for t in table if (t["model"], t["metric"]) == (r["model"], "accuracy"))
        assert printed["value"] == f"{r['value']:.4f}"
    assert 'id="task-smoke_colours">smoke_colours</h3>' in html and run_id in html


def test_report_escapes_html(capsys: pytest.CaptureFixture[str], store_path: Path, tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    with Store(store_path) as store:
        run_id = store.start_run(config={"models": [evil]}, config_hash="h", seed=0, argv=["mgbench"],
                                 provenance={"git_sha": None, "package_version": "0", "host": "h"})
        store.write_metrics(run_id, evil, "smoke_colours", [MetricValue("accuracy", 0.5, 10, 0.2, 0.8)])
        store.finish_run(run_id)
    out = tmp_path / "report"
    assert cli(capsys, "report", "--store", str(store_path), "--out", str(out))[0] == 0
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html and html.count("<script") == 1  # the report's own sorting code only
    assert json.loads((out / "report.json").read_text())["tasks"]["smoke_colours"][0]["model"] == evil


@pytest.mark.parametrize("command", ["show", "export", "report"])
def test_missing_store_is_exit_2_and_not_created(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 command: str) -> None:
    missing = tmp_path / "nowhere" / "missing.sqlite"
    argv = [command, "--store", str(missing)] + ([] if command == "show" else ["--out", str(tmp_path / "o")])
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert "no such store" in err and str(missing) in err
    assert not missing.exists() and not missing.parent.exists()


# ----- the installed console script ---------------------------------------------------------------------
def console(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["MGBENCH_CACHE"] = str(tmp_path / "cache")
    return subprocess.run([str(MGBENCH), *argv], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)


def test_console_script(tmp_path: Path) -> None:
    assert MGBENCH.is_file(), f"console script not installed at {MGBENCH}"
    helped = console(tmp_path, "--help")
    assert helped.returncode == 0
    assert re.findall(r"^ {4}(\w+) ", helped.stdout, re.MULTILINE) == list(COMMANDS)

    store = tmp_path / "s.sqlite"
    missing = console(tmp_path, "show", "--store", str(store))
    assert missing.returncode == 2 and "no such store" in missing.stderr and not store.exists()

    ran = console(tmp_path, "run", "--store", str(store), "--limit", "5", "--no-progress")
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stdout.split()[1]
    shown = console(tmp_path, "show", "--store", str(store))
    assert shown.returncode == 0
    runs, metrics = parse_tables(shown.stdout)
    assert [r["run"] for r in runs] == [run_id]
    assert {(r["model"], r["metric"], r["n"]) for r in metrics} == {("dummy", m, "5") for m in ("accuracy", "errors")}
    ((argv,),) = query(store, "SELECT argv FROM runs")
    assert json.loads(argv) == ["mgbench", "run", "--store", str(store), "--limit", "5", "--no-progress"]
