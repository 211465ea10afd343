"""Logging set up once per process, as text or JSON lines, and masking of phone numbers."""

from __future__ import annotations

import json
import logging
import sys
from typing import Final, TextIO

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, log_format: str, stream: TextIO = sys.stderr) -> None:
    """Route all loggers to one handler on `stream`, replacing any earlier setup."""
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # waitress warns about its task queue under any burst; the request metrics show load better.
    logging.getLogger("waitress.queue").setLevel(max(_LEVELS[level], logging.ERROR))


def mask_number(number: str | None) -> str:
    """A phone number with its middle hidden, enough to tell lines apart in a log."""
    if not number:
        return "-"
    if not number.isdigit() or len(number) <= 6:
        return number if number == "anonymous" else "***"
    return f"{number[:4]}{'*' * (len(number) - 6)}{number[-2:]}"
