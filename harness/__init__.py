"""mgbench's engine: types, registries, results store, runner, CLI and pytest plugin."""

from importlib import metadata

try:
    __version__ = metadata.version("mgbench")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
