"""mgbench's pytest plugin (registered through the `pytest11` entry point).

- Marker `benchmark` (no arguments) tags a paper-claims benchmark; `pytest -m benchmark` selects them.
  Parameters go on the marker `mgbench(models=..., tasks=..., limit=..., batch_size=...)`.
- Options `--mgbench-models`, `--mgbench-tasks`, `--mgbench-store`, `--mgbench-config` configure the
  zoo under test (CLI > config file > defaults, as for `mgbench run`); `--mgbench-zoo DIR` points the tiny zoo
  models at a zoo built elsewhere (`mgbench zoo build --out DIR`, e.g. another `--seed`).
- Fixtures: `mgbench_config` and `mgbench_runner` (session scope: one configured Runner for the whole
  session) and `mgbench_result` (runs the test's models x tasks through that runner and returns the
  RunResult; already stored samples are reused, so tests sharing a zoo generate once).

Nothing here imports torch until a fixture is used: this plugin loads in every pytest session of an
environment where mgbench is installed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness.config import RunConfig
    from harness.runner import Runner, RunResult

MARKER_PARAMS = ("models", "tasks", "limit", "batch_size")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mgbench", "mgbench benchmark options")
    group.addoption("--mgbench-models", default=None,
                    help="comma-separated model names for benchmark tests (default: the config's)")
    group.addoption("--mgbench-tasks", default=None,
                    help="comma-separated task names for benchmark tests (default: the config's)")
    group.addoption("--mgbench-store", default=None,
                    help="results store for benchmark runs (default: <rootdir>/.mgbench/benchmarks.sqlite)")
    group.addoption("--mgbench-config", default=None,
                    help="YAML run config (models, tasks, store, model_options, ...) for benchmark tests")
    group.addoption("--mgbench-zoo", default=None, metavar="DIR",
                    help="a tiny zoo built with `mgbench zoo build --out DIR` (e.g. another --seed): the zoo "
                         "models read it instead of the cache's zoo (a model_options 'zoo' in the config wins)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "benchmark: an mgbench paper-claims benchmark (takes no arguments); run with -m benchmark"
    )
    config.addinivalue_line(
        "markers",
        "mgbench(models=None, tasks=None, limit=None, batch_size=None): parameters of an mgbench benchmark",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for mark in item.iter_markers("benchmark"):
            if mark.args or mark.kwargs:
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.benchmark takes no arguments; "
                    f"put parameters on @pytest.mark.mgbench({', '.join(f'{p}=...' for p in MARKER_PARAMS)})"
                )
        for mark in item.iter_markers("mgbench"):
            unknown = sorted(set(mark.kwargs) - set(MARKER_PARAMS))
            if mark.args or unknown:
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.mgbench takes only keyword arguments {MARKER_PARAMS}; "
                    f"got args={mark.args!r} unknown={unknown}"
                )


@pytest.fixture(scope="session")
def mgbench_config(pytestconfig: pytest.Config) -> RunConfig:
    from harness.config import build_config, load_config_file
    from harness.registry import MODELS, TASKS, parse_names

    opt = pytestconfig.getoption
    models, tasks, store, config_file = (opt("--mgbench-models"), opt("--mgbench-tasks"),
                                         opt("--mgbench-store"), opt("--mgbench-config"))
    file_values = load_config_file(config_file) if config_file else {}
    if store is None and "store" not in file_values:
        store = str(Path(pytestconfig.rootpath) / ".mgbench" / "benchmarks.sqlite")
    config = build_config(
        config_file,
        models=tuple(parse_names(models, MODELS)) if models else None,
        tasks=tuple(parse_names(tasks, TASKS)) if tasks else None,
        store=store,
        progress=False,
    )
    zoo = opt("--mgbench-zoo")
    if zoo is None:
        return config
    return dataclasses.replace(config, model_options=zoo_model_options(zoo, config.model_options))


def zoo_model_options(zoo: str | Path, model_options: dict) -> dict:
    """`model_options` with every tiny zoo model reading `zoo` (where the options do not already name one)."""
    folder = Path(zoo).expanduser().resolve()
    if not (folder / "zoo.json").is_file():
        raise pytest.UsageError(f"--mgbench-zoo {zoo}: {folder / 'zoo.json'} does not exist; build the zoo first "
                                f"(mgbench zoo build --out {zoo})")
    from harness.train.zoo import MODELS as ZOO_MODELS

    options = {m: dict(o) for m, o in model_options.items()}
    for name in ZOO_MODELS:
        options.setdefault(name, {}).setdefault("zoo", str(folder))
    return options


@pytest.fixture(scope="session")
def mgbench_runner(pytestconfig: pytest.Config, mgbench_config: RunConfig) -> Runner:
    from harness.runner import Runner

    pytestconfig.stash[_USED] = mgbench_config.store  # the session ends by writing this store's report
    return Runner(mgbench_config, argv=["pytest", *pytestconfig.invocation_params.args])


_USED = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """After a session that ran benchmarks: write the leaderboard report from their store, print its path."""
    store_path = config.stash.get(_USED, None)
    if store_path is None or not Path(store_path).exists():
        return
    from harness.store import Store
    from reports.leaderboard import build_report

    out = Path(store_path).with_name(Path(store_path).stem + "-report")
    with Store(store_path) as store:
        path = build_report(store, out)
    terminalreporter.write_sep("-", "mgbench")
    terminalreporter.write_line(f"mgbench report: {path.resolve()}")


@pytest.fixture
def mgbench_result(request: pytest.FixtureRequest, mgbench_runner: Runner) -> RunResult:
    """Run this test's models x tasks (from @pytest.mark.mgbench, else the session config)."""
    import dataclasses

    from harness.registry import MODELS, TASKS, parse_names
    from harness.runner import Runner

    mark = request.node.get_closest_marker("mgbench")
    params = dict(mark.kwargs) if mark else {}
    runner = mgbench_runner
    changes = {k: params[k] for k in ("limit", "batch_size") if params.get(k) is not None}
    if changes:
        runner = Runner(dataclasses.replace(mgbench_runner.config, **changes), argv=mgbench_runner.argv)
    models, tasks = params.get("models"), params.get("tasks")
    # Marker names are read exactly like --mgbench-models/--mgbench-tasks ("a,b", lists, "all").
    return runner.run(models=None if models is None else parse_names(models, MODELS),
                      tasks=None if tasks is None else parse_names(tasks, TASKS))
