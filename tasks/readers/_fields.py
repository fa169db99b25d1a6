"""Shared plumbing for the readers: load JSON/JSONL and read typed fields, raising `DataError` on any problem.

Readers describe what they expect (`rec.text("question")`, `rec.texts("choices", length=4)`) and this
module words the error, so every reader's messages look the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.readers.errors import DataError, describe, record_label


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataError(path, None, None, f"cannot read file: {reason}") from exc


def load_json(path: Path) -> Any:
    """The parsed file; a truncated or invalid file is a DataError giving the line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, None, None, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) per non-blank line; line numbers start at 1 as in an editor."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue  # a trailing blank line is common in hand-edited JSONL and carries no record
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"line {number}", None, f"invalid JSON at column {exc.colno}: {exc.msg}") from exc


def top_level(path: Path, data: Any, expected: type, *keys: str) -> None:
    """Check the file's outermost value is `expected` (list/dict) and, for a dict, that `keys` are lists."""
    if not isinstance(data, expected):
        want = "a JSON object" if expected is dict else "a JSON list"
        raise DataError(path, None, None, f"expected {want} at the top level, got {describe(data)}")
    for key in keys:
        if key not in data:
            raise DataError(path, None, key, "missing top-level key")
        if not isinstance(data[key], list):
            raise DataError(path, None, key, f"expected a list, got {describe(data[key])}")


class Record:
    """One JSON object under validation. `label` says which record it is; `prefix` names nested fields."""

    def __init__(self, data: Any, file: Path, label: str, prefix: str = "") -> None:
        self.file, self.label, self.prefix = file, label, prefix
        if not isinstance(data, dict):
            raise DataError(file, label, prefix.rstrip(".") or None, f"expected an object, got {describe(data)}")
        self.data: dict[str, Any] = data

    def error(self, key: str | None, message: str) -> DataError:
        return DataError(self.file, self.label, f"{self.prefix}{key}" if key else None, message)

    def name_by(self, key: str, value: Any) -> None:
        """Add the record's own id to its label once read: `record 3` becomes `record 3 (question_id 'abc')`."""
        self.label = f"{self.label} ({key} {value!r})"

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str) -> Any:
        if key not in self.data:
            raise self.error(key, "missing")
        return self.data[key]

    def text(self, key: str, *, allow_empty: bool = False) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {describe(value)}")
        if not allow_empty and not value.strip():
            raise self.error(key, f"expected a non-empty string, got {value!r}")
        return value

    def integer(self, key: str) -> int:
        value = self.get(key)
        # bool is an int subclass in Python, but `true` is never a valid id or index in these formats.
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, f"expected an integer, got {describe(value)}")
        return value

    def number(self, key: str) -> float:
        value = self.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(key, f"expected a number, got {describe(value)}")
        return float(value)

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {describe(value)}")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.get(key)
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {describe(value)}")
        return value

    def texts(self, key: str, *, length: int | None = None, allow_empty: bool = False) -> tuple[str, ...]:
        value = self.get(key)
        want = f"a list of {length} strings" if length is not None else "a list of strings"
        if not isinstance(value, list) or (length is not None and len(value) != length):
            raise self.error(key, f"expected {want}, got {describe(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or (not allow_empty and not item.strip()):
                got = describe(item) if not isinstance(item, str) else repr(item)
                raise self.error(key, f"expected {want}, got {got} at index {i}")
        return tuple(value)

    def child(self, key: str) -> Record:
        """A nested object, whose fields are then named `key.inner`."""
        return Record(self.get(key), self.file, self.label, f"{self.prefix}{key}.")

    def entry(self, key: str, position: int) -> Record:
        """Element `position` of the list `key`, itself an object: fields named `key[position].inner`."""
        return Record(self.items(key)[position], self.file, self.label, f"{self.prefix}{key}[{position}].")


def numbered(path: Path, items: list[Any], unit: str = "record") -> Iterator[Record]:
    """A Record per list element, labelled by position (`record 0`, `record 1`, ...)."""
    for i, item in enumerate(items):
        yield Record(item, path, record_label(i, unit=unit))


def safe_stem(rec: Record, key: str, value: str) -> str:
    """An id that becomes part of a file name must not reach outside the image folder."""
    if "/" in value or "\\" in value or value in {".", ".."}:
        raise rec.error(key, f"expected a plain file name part, got {value!r}")
    return value
