"""Where a run came from: git sha, package version, host, and the command line with secrets removed."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import harness

SECRET_NAME = re.compile(r"(key|token|secret|password|passwd|credential|auth)", re.IGNORECASE)
SECRET_VALUE = re.compile(r"^(sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{8,}|Bearer\s+\S+)$")
REDACTED = "***"


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Hide values of options whose name looks secret (`--api-key X`, `--api-key=X`, `TOKEN=X`)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        name, eq, _value = arg.partition("=")
        if eq and SECRET_NAME.search(name):
            out.append(f"{name}={REDACTED}")
        elif arg.startswith("-") and SECRET_NAME.search(arg):
            out.append(arg)
            hide_next = True
        elif SECRET_VALUE.match(arg):
            out.append(REDACTED)
        else:
            out.append(arg)
    return out


def git_sha() -> str | None:
    """The commit of the mgbench source tree, if it runs from a git checkout."""
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


def collect() -> dict[str, Any]:
    return {"git_sha": git_sha(), "package_version": harness.__version__, "host": socket.gethostname()}
