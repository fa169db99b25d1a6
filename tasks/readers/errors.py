"""The one error every reader raises for bad input: a single line naming file, record and field.

A dataset file that is hundreds of megabytes big is no place to hunt for "KeyError: 'caption'". Each
reader therefore turns every problem it finds (missing key, wrong type, truncated JSON, empty caption,
...) into a `DataError` whose message reads, on ONE line,

    path/to/file.json: record 3 (question_id 'abc'): field 'choices': expected a list of 4 strings, got str

`record` and `field` are left out of the line when the problem is about the whole file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Malformed dataset input. `file`, `record`, `field` and `message` stay available as attributes."""

    def __init__(self, file: str | Path, record: str | int | None, field: str | None, message: str) -> None:
        self.file = str(file)
        # An int is a position ("record 3"); a string is used as written ("line 7", "image 2 (id 42)").
        self.record = f"record {record}" if isinstance(record, int) else record
        self.field = field
        # The message must stay one line even when it quotes data or an exception with newlines in it.
        self.message = message.replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(self._line())

    def _line(self) -> str:
        parts = [self.file]
        if self.record is not None:
            parts.append(self.record)
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        parts.append(self.message)
        return ": ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # The harness runs readers in worker processes; the default exception pickling would call
        # DataError(line) with one argument and fail, so rebuild from the four parts instead.
        return (DataError, (self.file, self.record, self.field, self.message))


def record_label(position: int, id_name: str | None = None, id_value: Any = None, *, unit: str = "record") -> str:
    """`record 3 (question_id 'abc')`: the position always, the record's own id once it is known."""
    if id_name is None:
        return f"{unit} {position}"
    return f"{unit} {position} ({id_name} {id_value!r})"


def describe(value: Any) -> str:
    """A value's JSON-ish type for 'got ...', with a short preview for scalars so the fix is obvious."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    preview = repr(value)
    if len(preview) > 40:
        preview = preview[:37] + "..."
    return f"{type(value).__name__} {preview}"
