"""Every error the exporter raises on purpose, under one base; messages are one line."""

from __future__ import annotations


class ExporterError(Exception):
    """Base of the exporter's own errors."""


class ConfigError(ExporterError, ValueError):
    """A flag or environment value that cannot be used."""


class ConfigFileError(ConfigError):
    """The configuration file cannot be used; the message names the file and the line."""


class StateError(ExporterError):
    """The saved state cannot be used or written; the message says why and what to do."""


class JournalError(StateError):
    """A journal file is damaged somewhere other than at its very end."""


class RequestError(ExporterError):
    """A webhook request refused: HTTP `status`, a bounded `reason` label, extra headers."""

    def __init__(
        self, status: int, reason: str, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.headers = headers


class InvalidEventError(RequestError, ValueError):
    """A request body that is not a sipgate.io event."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(400, reason, message)


class Rejected(RequestError):  # noqa: N818 -- a verdict, not a failure of the guard
    """A request the guard refused by its source, size, credentials or signature."""


class RelayError(ExporterError):
    """Relay mode could not use what the upstream application did."""


class InvalidReplyError(RelayError, ValueError):
    """An upstream reply to newCall that sipgate must not see: not XML, or not a <Response>."""


class UpstreamError(RelayError):
    """An upstream request that failed; `outcome` is the relay outcome label."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class StateUnavailableError(StateError):
    """The shared state cannot be reached or written now; a request may go elsewhere."""


class CommitUnknownError(StateUnavailableError):
    """The shared state's commit failed on its way: it may have been written or not. The
    counts are read again from the state; nothing is to be counted in its place."""
