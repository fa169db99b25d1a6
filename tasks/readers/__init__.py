"""Validated readers for the public dataset formats the paper's evaluations and training use.

Each reader returns frozen dataclass records that carry an image path (never opened here: images load
lazily in harness.images) and a stable `image_key` string, and raises `DataError`, one line naming file,
record and field, on any malformed input.
"""

from tasks.readers.errors import DataError

__all__ = ["DataError"]
