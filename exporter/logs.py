"""Logging set up once per process, as text or JSON lines, and masking of phone numbers."""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
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


def stream_handler(log_format: str, stream: TextIO) -> logging.Handler:
    """A handler writing lines in `log_format` (text or json) to `stream`."""
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def setup_logging(level: str, log_format: str, stream: TextIO = sys.stderr) -> None:
    """Route all loggers to `stream` through a queue, written out until the process exits.

    Request threads only put records on the queue: writing a line releases the interpreter
    lock, and a request thread would then wait to get it back. A listener thread writes them.
    """
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, stream_handler(log_format, stream))
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(records)]
    root.setLevel(_LEVELS[level])
    # waitress warns about its task queue under any burst; the request metrics show load better.
    logging.getLogger("waitress.queue").setLevel(max(_LEVELS[level], logging.ERROR))
    listener.start()
    atexit.register(listener.stop)


def mask_number(number: str | None) -> str:
    """A phone number with its middle hidden, enough to tell lines apart in a log."""
    if not number:
        return "-"
    if not number.isdigit() or len(number) <= 6:
        return number if number == "anonymous" else "***"
    return f"{number[:4]}{'*' * (len(number) - 6)}{number[-2:]}"
