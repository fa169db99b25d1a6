"""mgbench's pytest plugin (harness/pytest_plugin.py), exercised through `pytester` projects.

Each test writes a small pytest project (with the same `-m "not benchmark"` addopts as ours), runs it, and
checks outcomes, output, or what the inner tests wrote to a JSON file: marker selection and validation,
the `--mgbench-*` options, and the `mgbench_config` / `mgbench_runner` / `mgbench_result` fixtures.
Runs that import the runner (and so torch) go through a subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.store import Store

INI = """
[pytest]
addopts = -m "not benchmark" --strict-markers
"""

# An inner test that writes the session's mgbench_config to config.json (pytester runs in its own folder).
DUMP_CONFIG_TEST = """
import json

def test_dump(mgbench_config):
    with open("config.json", "w") as fh:
        json.dump(mgbench_config.to_dict(), fh)
"""


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory,
            monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project with our ini; generated data goes to a fresh cache dir, not the user's."""
    monkeypatch.setenv("MGBENCH_CACHE", str(tmp_path_factory.mktemp("mgbench-cache")))
    pytester.makeini(INI)
    return pytester


def dump_config(project: pytest.Pytester, *args: str) -> dict:
    project.makepyfile(test_dump=DUMP_CONFIG_TEST)
    result = project.runpytest(*args)
    result.assert_outcomes(passed=1)
    return json.loads((project.path / "config.json").read_text())


# ----- 1. marker selection ---------------------------------------------------------------------------

SELECTION_TESTS = """
import pytest

def test_plain():
    pass

@pytest.mark.benchmark
def test_bench():
    pass
"""


def test_plain_run_deselects_benchmarks(project: pytest.Pytester) -> None:
    project.makepyfile(SELECTION_TESTS)
    result = project.runpytest("-v")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*::test_plain PASSED*"])
    result.stdout.no_fnmatch_line("*::test_bench *")


def test_dash_m_benchmark_overrides_addopts(project: pytest.Pytester) -> None:
    project.makepyfile(SELECTION_TESTS)
    result = project.runpytest("-v", "-m", "benchmark")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*::test_bench PASSED*"])
    result.stdout.no_fnmatch_line("*::test_plain *")


def test_later_dash_m_wins_over_an_earlier_one(project: pytest.Pytester) -> None:
    project.makepyfile(SELECTION_TESTS)
    result = project.runpytest("-v", "-m", "benchmark", "-m", "not benchmark")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*::test_plain PASSED*"])


# ----- 2. marker validation and registration ---------------------------------------------------------

@pytest.mark.parametrize("marker", ["benchmark(limit=3)", "benchmark('dummy')"])
def test_benchmark_marker_with_arguments_is_a_usage_error(project: pytest.Pytester, marker: str) -> None:
    project.makepyfile(f"""
        import pytest

        @pytest.mark.{marker}
        def test_bench():
            pass
    """)
    result = project.runpytest("-m", "benchmark")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "test_bench" in output
    assert "@pytest.mark.benchmark takes no arguments" in output
    assert "pytest.mark.mgbench(" in output
    assert "passed" not in result.stdout.str()


@pytest.mark.parametrize("marker, detail", [("mgbench(bogus=1)", "unknown=['bogus']"),
                                            ("mgbench('dummy')", "args=('dummy',)")])
def test_mgbench_marker_with_unknown_parameters_is_a_usage_error(project: pytest.Pytester, marker: str,
                                                                 detail: str) -> None:
    # Validation happens at collection, so it catches deselected tests too (no -m benchmark here).
    project.makepyfile(f"""
        import pytest

        @pytest.mark.benchmark
        @pytest.mark.{marker}
        def test_bench():
            pass
    """)
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "@pytest.mark.mgbench takes only keyword arguments" in output
    assert detail in output


def test_valid_markers_pass_strict_markers(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.benchmark
        @pytest.mark.mgbench(models=["dummy"], tasks="smoke_colours", limit=2, batch_size=4)
        def test_bench():
            pass
    """)
    result = project.runpytest("-m", "benchmark")  # --strict-markers comes from the ini
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_markers_are_registered(project: pytest.Pytester) -> None:
    result = project.runpytest("--markers")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "@pytest.mark.benchmark: an mgbench paper-claims benchmark*",
        "@pytest.mark.mgbench(models=None, tasks=None, limit=None, batch_size=None): *",
    ])


def test_options_are_listed_in_help(project: pytest.Pytester) -> None:
    result = project.runpytest("--help")
    result.stdout.fnmatch_lines(["mgbench benchmark options:", "*--mgbench-models*", "*--mgbench-tasks*",
                                 "*--mgbench-store*", "*--mgbench-config*", "*--mgbench-zoo*"])


# ----- 3. options and mgbench_config -----------------------------------------------------------------

def test_cli_options_reach_mgbench_config(project: pytest.Pytester) -> None:
    store = project.path / "elsewhere" / "custom.sqlite"
    project.makepyfile(f"""
        def test_config(mgbench_config):
            assert mgbench_config.models == ("dummy-blind",)
            assert mgbench_config.tasks == ("smoke_colours_mc",)
            assert mgbench_config.store == {str(store)!r}
            assert mgbench_config.progress is False
    """)
    result = project.runpytest("--mgbench-models", "dummy-blind", "--mgbench-tasks", "smoke_colours_mc",
                               "--mgbench-store", str(store))
    result.assert_outcomes(passed=1)


def test_mgbench_zoo_points_every_tiny_zoo_model_at_that_zoo(project: pytest.Pytester) -> None:
    from harness.train.zoo import MODELS

    zoo = project.mkdir("seed1-zoo")
    (zoo / "zoo.json").write_text("{}")
    conf = project.path / "bench.yaml"
    conf.write_text("model_options:\n  blip2-tiny: {zoo: /somewhere/else}\n  dummy-blind: {seed: 3}\n")
    cfg = dump_config(project, "--mgbench-zoo", str(zoo), "--mgbench-config", str(conf))
    options = cfg["model_options"]
    assert {m: o["zoo"] for m, o in options.items() if m in MODELS and m != "blip2-tiny"} == {
        m: str(zoo) for m in MODELS if m != "blip2-tiny"}
    assert options["blip2-tiny"] == {"zoo": "/somewhere/else"}  # the config's own choice wins
    assert options["dummy-blind"] == {"seed": 3}  # other models untouched
    assert "zoo" not in {k for o in dump_config(project)["model_options"].values() for k in o}  # off by default


def test_mgbench_zoo_without_a_built_zoo_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makepyfile(DUMP_CONFIG_TEST)
    result = project.runpytest("--mgbench-zoo", str(project.path / "nothing"))
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*--mgbench-zoo*nothing/zoo.json does not exist*mgbench zoo build --out*"])


def test_comma_separated_names_keep_order_and_drop_duplicates(project: pytest.Pytester) -> None:
    cfg = dump_config(project, "--mgbench-models", "dummy-blind, dummy,dummy-blind",
                      "--mgbench-tasks", "smoke_colours_mc,smoke_colours")
    assert cfg["models"] == ["dummy-blind", "dummy"]
    assert cfg["tasks"] == ["smoke_colours_mc", "smoke_colours"]


def test_defaults_and_default_store_under_rootdir(project: pytest.Pytester) -> None:
    cfg = dump_config(project)
    assert cfg["store"] == str(project.path / ".mgbench" / "benchmarks.sqlite")
    assert cfg["models"] == ["dummy"]
    assert cfg["tasks"] == ["smoke_colours"]
    assert cfg["progress"] is False


CONFIG_YAML = """
models: [dummy-blind]
tasks: smoke_colours_mc
store: from_file.sqlite
seed: 7
limit: 5
batch_size: 3
model_options:
  dummy-blind: {seed: 3}
"""


def test_config_file_is_read(project: pytest.Pytester) -> None:
    conf = project.mkdir("conf") / "bench.yaml"
    conf.write_text(CONFIG_YAML)
    cfg = dump_config(project, "--mgbench-config", str(conf))
    assert cfg["models"] == ["dummy-blind"]
    assert cfg["tasks"] == ["smoke_colours_mc"]
    assert cfg["store"] == str((conf.parent / "from_file.sqlite").resolve())  # relative to the file
    assert (cfg["seed"], cfg["limit"], cfg["batch_size"]) == (7, 5, 3)
    assert cfg["model_options"] == {"dummy-blind": {"seed": 3}}
    assert cfg["progress"] is False


def test_cli_options_override_the_config_file(project: pytest.Pytester) -> None:
    conf = project.mkdir("conf") / "bench.yaml"
    conf.write_text(CONFIG_YAML)
    store = project.path / "cli.sqlite"
    cfg = dump_config(project, "--mgbench-config", str(conf), "--mgbench-models", "dummy",
                      "--mgbench-tasks", "smoke_colours", "--mgbench-store", str(store))
    assert cfg["models"] == ["dummy"]
    assert cfg["tasks"] == ["smoke_colours"]
    assert cfg["store"] == str(store)
    assert (cfg["seed"], cfg["limit"], cfg["batch_size"]) == (7, 5, 3)  # not overridden: the file's
    assert cfg["model_options"] == {"dummy-blind": {"seed": 3}}


def test_config_file_without_store_uses_the_default_store(project: pytest.Pytester) -> None:
    conf = project.path / "bench.yaml"
    conf.write_text("seed: 4\n")
    cfg = dump_config(project, "--mgbench-config", str(conf))
    assert cfg["seed"] == 4
    assert cfg["store"] == str(project.path / ".mgbench" / "benchmarks.sqlite")


@pytest.mark.parametrize("option, name, kind", [("--mgbench-models", "dummy,nope", "model"),
                                                ("--mgbench-tasks", "nope", "task")])
def test_unknown_name_is_an_error_listing_known_names(project: pytest.Pytester, option: str, name: str,
                                                      kind: str) -> None:
    project.makepyfile(test_dump=DUMP_CONFIG_TEST)
    result = project.runpytest(option, name)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*unknown {kind} 'nope'; known {kind}s: *"])
    known = "dummy, dummy-blind" if kind == "model" else "smoke_colours, smoke_colours_mc"
    assert known in result.stdout.str()
    assert not (project.path / "config.json").exists()


def test_fixtures_are_lazy_and_plugin_does_not_import_torch(project: pytest.Pytester) -> None:
    # The plugin loads in every pytest session; only using a fixture may import the runner (and torch).
    project.makepyfile("""
        import sys

        def test_nothing_heavy_imported():
            assert "harness.pytest_plugin" in sys.modules
            assert "torch" not in sys.modules
            assert "harness.runner" not in sys.modules
    """)
    project.runpytest_subprocess().assert_outcomes(passed=1)


# ----- 4. mgbench_runner -----------------------------------------------------------------------------

RUNNER_CONFTEST = """
import json
import pytest

SEEN = []  # keeps every runner alive, so a fresh object cannot reuse an old id()

@pytest.fixture
def record_runner(mgbench_runner, mgbench_config):
    SEEN.append((mgbench_runner, mgbench_config))
    return mgbench_runner

def pytest_sessionfinish(session):
    with open("runners.json", "w") as fh:
        json.dump({
            "n": len(SEEN),
            "distinct_runners": len({id(r) for r, _ in SEEN}),
            "runner_has_session_config": all(r.config is c for r, c in SEEN),
            "configs": [r.config.to_dict() for r, _ in SEEN],
            "argv": [r.argv for r, _ in SEEN],
        }, fh)
"""


def test_mgbench_runner_is_one_session_object_configured_from_options(project: pytest.Pytester) -> None:
    project.makeconftest(RUNNER_CONFTEST)
    project.makepyfile(
        test_a="def test_a(record_runner):\n    pass\n",
        test_b="def test_b(record_runner):\n    pass\n\ndef test_b2(record_runner):\n    pass\n",
    )
    store = project.path / "runner.sqlite"
    result = project.runpytest_subprocess("--mgbench-models", "dummy-blind", "--mgbench-tasks",
                                          "smoke_colours_mc", "--mgbench-store", str(store))
    result.assert_outcomes(passed=3)
    seen = json.loads((project.path / "runners.json").read_text())
    assert seen["n"] == 3
    assert seen["distinct_runners"] == 1
    assert seen["runner_has_session_config"] is True
    cfg = seen["configs"][0]
    assert (cfg["models"], cfg["tasks"], cfg["store"]) == (["dummy-blind"], ["smoke_colours_mc"], str(store))
    argv = seen["argv"][0]  # provenance of the session: the options actually given
    assert argv[0] == "pytest" and argv[argv.index("--mgbench-models") + 1] == "dummy-blind"
    assert not store.exists()  # creating the runner does not run anything


# ----- 5. mgbench_result -----------------------------------------------------------------------------

RESULT_TEST = """
import json
import pytest

@pytest.mark.benchmark
@pytest.mark.mgbench(models=["dummy", "dummy-blind"], tasks=["smoke_colours"], limit=30)
def test_accuracy(mgbench_result):
    seeing = mgbench_result.pair("dummy", "smoke_colours")
    blind = mgbench_result.pair("dummy-blind", "smoke_colours")
    acc, blind_acc = seeing.metric("accuracy"), blind.metric("accuracy")
    assert acc.n == blind_acc.n == 30
    assert acc.value > blind_acc.value  # the dummy that looks at the image beats the one that guesses
    with open("result.json", "w") as fh:
        json.dump({
            "run_id": mgbench_result.run_id,
            "store": mgbench_result.store,
            "pairs": [[p.model, p.task, p.selected, p.already_stored, p.generated] for p in mgbench_result.pairs],
            "accuracy": {"dummy": acc.value, "dummy-blind": blind_acc.value},
        }, fh)
"""


def test_mgbench_result_runs_the_marked_zoo_and_stores_it(project: pytest.Pytester) -> None:
    project.makepyfile(RESULT_TEST)
    store_path = project.path / "results" / "bench.sqlite"
    result = project.runpytest_subprocess("-m", "benchmark", "--mgbench-store", str(store_path))
    result.assert_outcomes(passed=1)
    out = json.loads((project.path / "result.json").read_text())
    assert out["store"] == str(store_path)
    assert out["pairs"] == [["dummy", "smoke_colours", 30, 0, 30], ["dummy-blind", "smoke_colours", 30, 0, 30]]

    with Store(store_path) as store:
        runs = store.runs()
        assert [r["run_id"] for r in runs] == [out["run_id"]]
        run = runs[0]
        assert run["status"] == "finished"
        run_config = json.loads(run["config_json"])
        assert run_config["models"] == ["dummy", "dummy-blind"]
        assert run_config["tasks"] == ["smoke_colours"]
        assert run_config["limit"] == 30
        argv = json.loads(run["argv"])
        assert argv[0] == "pytest" and "benchmark" in argv
        assert len(store.run_samples(out["run_id"], "smoke_colours")) == 30
        for model in ("dummy", "dummy-blind"):
            rows = list(store.generations(model=model, task="smoke_colours"))
            assert len(rows) == 30
            assert all(r.run_id == out["run_id"] and r.error is None for r in rows)
        assert store.count_generations() == 60
        stored_accuracy = {m["model"]: m["value"] for m in store.metrics(out["run_id"]) if m["metric"] == "accuracy"}
    assert stored_accuracy == out["accuracy"]


REUSE_TESTS = """
import json
import pytest

PAIRS = []

def record(result):
    PAIRS.append([[p.model, p.selected, p.already_stored, p.generated] for p in result.pairs])
    with open("pairs.json", "w") as fh:
        json.dump(PAIRS, fh)

@pytest.mark.benchmark
@pytest.mark.mgbench(models=["dummy", "dummy-blind"], tasks=["smoke_colours"], limit=20)
def test_first(mgbench_result):
    record(mgbench_result)

@pytest.mark.benchmark
@pytest.mark.mgbench(models="dummy-blind, dummy", tasks="smoke_colours", limit=20, batch_size=7)
def test_second_reuses_samples(mgbench_result):
    record(mgbench_result)
"""


def test_tests_sharing_a_zoo_generate_once(project: pytest.Pytester) -> None:
    project.makepyfile(REUSE_TESTS)
    store_path = project.path / "bench.sqlite"
    result = project.runpytest_subprocess("-m", "benchmark", "--mgbench-store", str(store_path))
    result.assert_outcomes(passed=2)
    first, second = json.loads((project.path / "pairs.json").read_text())
    assert first == [["dummy", 20, 0, 20], ["dummy-blind", 20, 0, 20]]
    assert second == [["dummy-blind", 20, 20, 0], ["dummy", 20, 20, 0]]  # string form, order kept
    with Store(store_path) as store:
        assert store.count_generations() == 40
        assert [r["status"] for r in store.runs()] == ["finished", "finished"]


def test_mgbench_result_without_marker_uses_the_session_config(project: pytest.Pytester) -> None:
    (project.path / "bench.yaml").write_text("models: [dummy-blind]\ntasks: [smoke_colours_mc]\nlimit: 12\n")
    project.makepyfile("""
        import json
        import pytest

        @pytest.mark.benchmark
        def test_session_zoo(mgbench_result):
            with open("pairs.json", "w") as fh:
                json.dump([[p.model, p.task, p.selected, p.generated] for p in mgbench_result.pairs], fh)
    """)
    store_path = project.path / "bench.sqlite"
    result = project.runpytest_subprocess("-m", "benchmark", "--mgbench-config", "bench.yaml",
                                          "--mgbench-store", str(store_path))
    result.assert_outcomes(passed=1)
    assert json.loads((project.path / "pairs.json").read_text()) == [["dummy-blind", "smoke_colours_mc", 12, 12]]
    with Store(store_path) as store:
        assert store.count_generations() == 12


def test_data_goes_to_the_mgbench_cache_dir(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MGBENCH_CACHE", str(cache))
    project.makepyfile("""
        import pytest

        @pytest.mark.benchmark
        @pytest.mark.mgbench(limit=2)
        def test_small(mgbench_result):
            assert mgbench_result.pair("dummy", "smoke_colours").selected == 2
    """)
    result = project.runpytest_subprocess("-m", "benchmark", "--mgbench-store", str(project.path / "s.sqlite"))
    result.assert_outcomes(passed=1)
    assert list(cache.glob("smoke_colours/*/questions.json"))
    assert (project.path / "s.sqlite").exists()
    assert not (project.path / ".mgbench").exists()  # --mgbench-store replaced the default store


def test_marker_names_are_parsed_like_the_cli_option(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.benchmark
        @pytest.mark.mgbench(models="dummy, dummy-blind,dummy,", tasks="smoke_colours_mc, smoke_colours,", limit=2)
        def test_all(mgbench_result):
            pairs = [(p.task, p.model) for p in mgbench_result.pairs]
            assert pairs == [("smoke_colours_mc", "dummy"), ("smoke_colours_mc", "dummy-blind"),
                             ("smoke_colours", "dummy"), ("smoke_colours", "dummy-blind")]
    """)
    result = project.runpytest_subprocess("-m", "benchmark", "--mgbench-store", str(project.path / "s.sqlite"))
    result.assert_outcomes(passed=1)


def test_a_benchmark_session_ends_by_writing_the_report(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.benchmark
        @pytest.mark.mgbench(models="dummy", tasks="smoke_colours", limit=3)
        def test_bench(mgbench_result):
            assert mgbench_result.pair("dummy", "smoke_colours").generated == 3
    """)
    store = project.path / "b.sqlite"
    result = project.runpytest_subprocess("-m", "benchmark", "--mgbench-store", str(store))
    result.assert_outcomes(passed=1)
    report = project.path / "b-report" / "index.html"
    result.stdout.fnmatch_lines([f"mgbench report: {report}"])
    assert "smoke_colours" in report.read_text()


def test_a_unit_session_writes_no_report(project: pytest.Pytester) -> None:
    project.makepyfile("def test_plain():\n    assert True\n")
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert "mgbench report" not in result.stdout.str()
