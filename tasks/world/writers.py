"""Deterministic, atomic file writers: bytes, JSON, JSONL, hard links and webdataset tar shards.

Every file is written to a temporary name in its folder and moved into place with `os.replace`, so a
reader (or a second process building the same world) never sees a half-written file. JSON is written
with sorted keys and no timestamps; tar members carry fixed metadata, so the same content always gives
the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

TAR_MTIME = 0  # 1970-01-01: tar members carry no build time


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; data files are readable like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    write_atomic(path, lambda fh: fh.write(data))


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=indent)
    write_bytes(path, (text + "\n").encode("utf-8"))


def write_jsonl(path: Path, records: Iterable[Any]) -> int:
    lines = [dumps(r) for r in records]
    write_bytes(path, "".join(line + "\n" for line in lines).encode("utf-8"))
    return len(lines)


def link_or_copy(src: Path, dst: Path) -> None:
    """Make `dst` the same file as `src` (a hard link; a copy where links are not possible)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and os.path.samefile(src, dst):
        return
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.link"
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # another file system, or links not supported: copy the bytes
        write_bytes(dst, src.read_bytes())
        return
    os.replace(tmp, dst)


def write_tar(path: Path, members: Iterable[tuple[str, bytes]]) -> int:
    """A tar of (name, bytes) members in the given order, with fixed mode, owner and mtime; returns the count."""
    count = 0

    def write(fh: IO[bytes]) -> None:
        nonlocal count
        with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
                count += 1

    write_atomic(path, write)
    return count
