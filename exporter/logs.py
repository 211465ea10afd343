"""Logging set up once per process, as text or JSON lines, and masking of phone numbers."""

from __future__ import annotations

import json
import logging
import queue
import sys
from logging.handlers import QueueHandler, QueueListener
from typing import Final, TextIO

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def formatter(log_format: str) -> logging.Formatter:
    """Lines as text or as JSON objects."""
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


class QueuedStreamHandler(QueueHandler):
    """Queues lines for a QueueListener that writes them to `stream`; closing writes the rest."""

    def __init__(self, stream: TextIO, line_formatter: logging.Formatter) -> None:
        # Made first, so that logging.shutdown closes it after this handler has emptied the queue.
        writer = logging.StreamHandler(stream)
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        super().__init__(records)
        # The line is formatted where it is logged, exception and all (QueueHandler.prepare);
        # the listener only writes it.
        self.setFormatter(line_formatter)
        self._listener: QueueListener | None = QueueListener(records, writer)
        self._listener.start()

    def close(self) -> None:
        """Stop the listener once it has written every queued line; logging.shutdown calls this."""
        self.acquire()
        try:
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.stop()
            super().close()
        finally:
            self.release()


def setup_logging(level: str, log_format: str, stream: TextIO = sys.stderr) -> None:
    """Route all loggers through a queue to `stream`; logging.shutdown at exit writes the rest."""
    root = logging.getLogger()
    previous = root.handlers[:]
    root.handlers[:] = [QueuedStreamHandler(stream, formatter(log_format))]
    for handler in previous:
        if isinstance(handler, QueuedStreamHandler):
            handler.close()
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
