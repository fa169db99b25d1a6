"""Stage-1 image-caption pairs (paper section 3: CC, SBU, LAION), in two layouts.

(a) webdataset tar shards, as img2dataset writes them: each sample is a run of consecutive members that
    share a key, here `KEY.jpg` (the image) and `KEY.json` (metadata with at least "caption"). Other
    members (img2dataset's `KEY.txt`, ...) are ignored. Shards are a list of paths or a brace pattern
    such as `laion/{00000..00127}.tar`.
(b) a JSONL file, one {"image": "relative/path.jpg", "caption": "..."} per line; relative paths resolve
    against the JSONL file's folder unless an image root is given.

Shards are read with the stdlib `tarfile`, not the `webdataset` library. webdataset is a streaming
pipeline for DataLoader workers: importing it imports torch (~2 s), and its errors do not say which
sample of which shard was bad. Reading the tar directly gives the one-line `DataError` every reader here
raises, while keeping webdataset's grouping rules (key = member path up to the first dot of its file
name, extension lower-cased, names without an extension skipped), so its shards and ours are the same
format; a test reads our writer's output with webdataset itself to hold us to that.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tasks.readers._fields import Record, iter_jsonl
from tasks.readers.errors import DataError, record_label

IMAGE_EXT = "jpg"
META_EXT = "json"


@dataclass(frozen=True)
class ShardSample:
    key: str  # the webdataset key, also the sample's stable image id
    image: bytes  # the encoded image exactly as stored; decoding is left to the image loader
    caption: str
    shard: Path

    @property
    def image_key(self) -> str:
        return self.key


@dataclass(frozen=True)
class JsonlPair:
    image: str  # the path as written in the file: the stable image id, independent of the machine
    image_path: Path  # where this machine finds it; never opened here
    caption: str

    @property
    def image_key(self) -> str:
        return self.image


def expand_shards(shards: str | Path | Sequence[str | Path]) -> list[Path]:
    """Shard paths from one path, one brace pattern, or a list of either, in the order given."""
    items = [shards] if isinstance(shards, str | Path) else list(shards)
    from braceexpand import braceexpand  # here: the JSONL pairs, all a GPU trainer may read, need no shard patterns

    paths = [Path(p) for item in items for p in (braceexpand(item) if isinstance(item, str) else [item])]
    if not paths:
        raise ValueError(f"no shards in {shards!r}")
    return paths


def iter_shard_samples(shards: str | Path | Sequence[str | Path]) -> Iterator[ShardSample]:
    """Every sample of every shard, streaming (a shard is never held in memory whole)."""
    for shard in expand_shards(shards):
        yield from _shard_samples(shard)


def _shard_samples(shard: Path) -> Iterator[ShardSample]:
    position, key, files = 0, None, {}
    seen: set[str] = set()
    for name, data in _members(shard):
        stem, ext = _split_name(name)
        if stem is None:
            continue
        if stem != key:
            if key is not None:
                yield _sample(shard, position, key, files)
                position += 1
            if stem in seen:
                # webdataset would start a second sample here and silently split the pair apart.
                raise DataError(shard, record_label(position, "key", stem, unit="sample"), None,
                                "key appears again after other samples (members of a sample must be consecutive)")
            seen.add(stem)
            key, files = stem, {}
        if ext in files:
            raise DataError(shard, record_label(position, "key", key, unit="sample"), ext, f"duplicate member {name}")
        files[ext] = data
    if key is not None:
        yield _sample(shard, position, key, files)


def _members(shard: Path) -> Iterator[tuple[str, bytes]]:
    """(name, content) of each regular file in the tar, turning every tar-level failure into a DataError."""
    name = None
    try:
        with tarfile.open(shard, "r|*") as tar:  # "|": sequential stream, no seeking; "*": also .tar.gz
            for member in tar:
                if member.isfile():
                    name = member.name
                    handle = tar.extractfile(member)
                    assert handle is not None  # always a file object for a regular member
                    yield name, handle.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        where = f"after member {name}" if name else "at the start"
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise DataError(shard, None, None, f"cannot read tar {where}: {reason}") from exc


def _split_name(name: str) -> tuple[str | None, str]:
    """`dir/000123.jpg` -> (`dir/000123`, `jpg`); `a.b.json` -> (`a`, `b.json`) as in webdataset."""
    path = PurePosixPath(name)
    stem, dot, ext = path.name.partition(".")
    if not dot or not stem:
        return None, ""
    return str(path.with_name(stem)), ext.lower()


def _sample(shard: Path, position: int, key: str, files: dict[str, bytes]) -> ShardSample:
    label = record_label(position, "key", key, unit="sample")
    for ext in (IMAGE_EXT, META_EXT):
        if ext not in files:
            raise DataError(shard, label, ext, f"missing member {key}.{ext}")
    try:
        meta = json.loads(files[META_EXT].decode("utf-8"))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise DataError(shard, label, META_EXT, f"invalid JSON in {key}.{META_EXT} at {where}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(shard, label, META_EXT, f"{key}.{META_EXT} is not UTF-8: {exc}") from exc
    caption = Record(meta, shard, label, f"{META_EXT}.").text("caption")
    return ShardSample(key, files[IMAGE_EXT], caption, shard)


def write_shard(path: str | Path, samples: Iterable[tuple[str, bytes, str]]) -> int:
    """Write (key, jpeg bytes, caption) samples as `KEY.jpg` + `KEY.json` members; returns the count.

    The file appears atomically (a reader never sees half a shard) and is byte-for-byte reproducible:
    member times, owners and modes are fixed, so a generator run twice gives identical shards.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    count, seen = 0, set()
    try:
        with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for key, image, caption in samples:
                if not key or "." in PurePosixPath(key).name or key.startswith("/") or key in seen:
                    raise ValueError(f"{path}: sample key {key!r} is empty, has a dot, is absolute or repeats")
                if not isinstance(caption, str) or not caption.strip():
                    raise ValueError(f"{path}: sample {key!r}: caption must be a non-empty string")
                seen.add(key)
                meta = json.dumps({"caption": caption}, ensure_ascii=False).encode("utf-8")
                for ext, data in ((IMAGE_EXT, bytes(image)), (META_EXT, meta)):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tar.addfile(info, io.BytesIO(data))
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def read_jsonl_pairs(path: str | Path, image_root: str | Path | None = None) -> list[JsonlPair]:
    """All pairs in file order; `image` paths resolve against `image_root`, by default the file's folder."""
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    pairs = []
    for number, obj in iter_jsonl(path):
        rec = Record(obj, path, f"line {number}")
        image = rec.text("image")
        rec.name_by("image", image)
        if Path(image).is_absolute():
            raise rec.error("image", "expected a relative path, got an absolute one")
        pairs.append(JsonlPair(image, root / image, rec.text("caption")))
    return pairs
