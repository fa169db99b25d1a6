"""Where a run came from: git sha, package version, host, and the command line with secrets removed."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import harness

SECRET_NAME = re.compile(r"(key|token|secret|password|passwd|credential|auth)", re.IGNORECASE)
SECRET_VALUE = re.compile(r"^(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{8,}|Bearer\s+\S+)$")
REDACTED = "***"


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Hide values of options whose name looks secret (`--api-key X`, `--api-key=X`, `TOKEN=X`,
    `--model-option m.api_key=X`, `--model-option=m.api_key=X`) and values that look like keys."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
        elif "=" in arg:
            out.append(_redact_assignment(arg))
        elif arg.startswith("-") and SECRET_NAME.search(arg):
            out.append(arg)
            hide_next = True
        else:
            out.append(REDACTED if SECRET_VALUE.match(arg) else arg)
    return out


def _redact_assignment(arg: str) -> str:
    """NAME=VALUE: hide VALUE if NAME looks secret; else VALUE may itself be NAME=VALUE (nested options)."""
    name, _, value = arg.partition("=")
    if SECRET_NAME.search(name):
        return f"{name}={REDACTED}"
    if "=" in value:
        return f"{name}={_redact_assignment(value)}"
    return f"{name}={REDACTED}" if SECRET_VALUE.match(value) else arg


def redact_options(options: dict[str, Any]) -> dict[str, Any]:
    """A copy of (nested) options with secret-looking keys' values and key-looking strings hidden."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            out[key] = redact_options(value)
        elif SECRET_NAME.search(str(key)) or (isinstance(value, str) and SECRET_VALUE.match(value)):
            out[key] = REDACTED
        else:
            out[key] = value
    return out


@lru_cache(maxsize=1)
def git_sha() -> str | None:
    """The commit of the mgbench source tree, if it runs from a git checkout (asked once per process)."""
    source = Path(harness.__file__).resolve().parent.parent
    try:
        result = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    sha = result.stdout.strip()
    dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return sha + ("-dirty" if dirty else "")


LIBRARIES = ("torch", "transformers", "tokenizers", "numpy", "pillow", "peft")


@lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """What a trained artefact's numbers may depend on beyond code, config and inputs: library versions, the
    CPU model and torch's thread count (two machines with the same zoo keys have trained different weights)."""
    import platform
    from importlib import metadata

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), **versions, "cpu": cpu, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def collect() -> dict[str, Any]:
    return {"git_sha": git_sha(), "package_version": harness.__version__, "host": socket.gethostname()}
