"""Registries are lazy and name the known entries on a miss; the README's commands are the ones CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.registry import MODELS, TASKS, Registry, UnknownNameError, parse_names
from harness.task import SPEC_DIR, TaskSpec

ROOT = Path(__file__).resolve().parent.parent


def test_listing_imports_no_adapter_and_no_torch():
    code = (
        "import sys; from harness.cli import main; main(['models']); main(['tasks']); "
        "assert 'model_zoo.dummy' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "dummy-blind" in result.stdout and "smoke_colours_mc" in result.stdout


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownNameError) as info:
        MODELS.target("minigpt5")
    assert "unknown model 'minigpt5'" in str(info.value)
    assert all(name in str(info.value) for name in MODELS.names())
    with pytest.raises(UnknownNameError, match="known tasks: .*smoke_colours"):
        parse_names("smoke_colours,nope", TASKS)


def test_parse_names_keeps_order_and_expands_all():
    assert parse_names(" dummy-blind,dummy,dummy-blind ", MODELS) == ["dummy-blind", "dummy"]
    assert parse_names("all", MODELS) == MODELS.names()
    with pytest.raises(ValueError):
        parse_names(" , ", MODELS)


def test_registry_loads_lazily_and_reports_bad_targets():
    reg = Registry("widget", "mgbench.test-widgets", {"path": "pathlib:Path", "bad": "pathlib:Nope"})
    assert reg.load("path") is Path
    with pytest.raises(ImportError, match="pathlib has no attribute 'Nope'"):
        reg.load("bad")
    with pytest.raises(ValueError, match="module:Attribute"):
        reg.register("x", "no-colon")


def test_every_builtin_task_spec_parses_and_matches_its_name():
    for path in sorted(SPEC_DIR.glob("*.yaml")):
        spec = TaskSpec.from_yaml(path)
        assert spec.name == path.stem and spec.version
        assert spec.name in TASKS.names()


def test_task_spec_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("name: t\nversion: 1\ndescription: d\nprompt: p\ncolour: red\n")
    with pytest.raises(ValueError, match=r"t\.yaml: unknown field\(s\) \['colour'\]"):
        TaskSpec.from_yaml(bad)
    bad.write_text("name: t\nversion: 1\ndescription: d\nprompt: p\ngeneration: {max_new_tokens: 0}\n")
    with pytest.raises(ValueError, match=r"t\.yaml: field 'generation': max_new_tokens must be >= 1"):
        TaskSpec.from_yaml(bad)
    bad.write_text("name: t\nversion: 1\nprompt: p\n")
    with pytest.raises(ValueError, match=r"missing required field\(s\) \['description'\]"):
        TaskSpec.from_yaml(bad)


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_readme_opens_with_main_job_and_test_commands_and_ci_runs_the_latter():
    main_job, tests = readme_commands()
    assert "torch==2.13.0" in main_job and main_job.endswith("mgbench demo")
    assert "torch==2.13.0" in tests and tests.endswith("pytest")
    # torch is installed before the package in both
    for command in (main_job, tests):
        assert command.index("torch==2.13.0") < command.index("-e '.[dev]'")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, ".ci/run must run the README's test command word for word"
