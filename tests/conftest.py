"""Shared test setup: generated data goes to a session temp folder, never the user's cache."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.environ.get("MGBENCH_CACHE")
    os.environ["MGBENCH_CACHE"] = str(tmp_path_factory.mktemp("mgbench-cache"))
    yield
    if previous is None:
        os.environ.pop("MGBENCH_CACHE", None)
    else:
        os.environ["MGBENCH_CACHE"] = previous
