"""Prometheus exporter for sipgate.io call statistics, fed by sipgate.io push webhooks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sipgate-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
