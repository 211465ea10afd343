"""Logging set up once per process, as text or JSON lines, and masking of phone numbers."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import deque
from typing import Final, TextIO

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


class SecondCachingFormatter(logging.Formatter):
    """A Formatter that turns a time into text once a second, not once a line.

    `time.strftime` was the largest part of formatting a line; a burst of lines (100,000
    calls expiring at once) mostly shares a handful of seconds.
    """

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self._cached: tuple[int, str | None, str] = (-1, None, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        cached_second, cached_format, text = self._cached
        if second != cached_second or datefmt != cached_format:
            moment = self.converter(record.created)
            text = time.strftime(datefmt or self.default_time_format, moment)
            self._cached = (second, datefmt, text)
        if datefmt:
            return text
        return f"{text},{int(record.msecs):03d}"  # as logging.Formatter.default_msec_format


class JsonFormatter(SecondCachingFormatter):
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


# How long a line may wait before it is written: short for a person, long for a burst.
WRITE_INTERVAL: Final = 0.1


class BatchedHandler(logging.Handler):
    """Writes log lines to `stream` from a thread of its own, every `interval` seconds at once.

    A thread that logs only appends the record to a deque: no lock, no wake-up, no system call.
    Formatting and writing happen on the writer thread, one write a batch: a request thread
    that wrote would give up the interpreter lock and wait to get it back, and one woken per
    line would take it from the requests each time.
    """

    def __init__(
        self, formatter: logging.Formatter, stream: TextIO, interval: float = WRITE_INTERVAL
    ) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self._stream = stream
        self._interval = interval
        self._pending: deque[logging.LogRecord] = deque()
        self._write_lock = threading.Lock()
        self._stopped = threading.Event()
        self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._writer.start()

    def handle(self, record: logging.LogRecord) -> bool:
        """Queue `record` unless a filter drops it; takes no lock."""
        if self.filters and not self.filter(record):
            return False
        self._pending.append(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self._pending.append(record)

    def flush(self) -> None:
        """Write every queued line now, in this thread."""
        with self._write_lock:
            pending, lines = self._pending, []
            record = None
            while pending:
                record = pending.popleft()
                try:
                    lines.append(self.format(record))
                except Exception:
                    self.handleError(record)
            if record is None or not lines:
                return
            try:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()
            except Exception:
                self.handleError(record)

    def close(self) -> None:
        """Stop the writer and write what is left."""
        self._stopped.set()
        if self._writer is not threading.current_thread():
            self._writer.join()
        self.flush()
        super().close()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.flush()


def formatter(log_format: str) -> logging.Formatter:
    """Lines as text or as JSON objects."""
    if log_format == "json":
        return JsonFormatter()
    return SecondCachingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def setup_logging(level: str, log_format: str, stream: TextIO = sys.stderr) -> None:
    """Route all loggers to `stream` through a BatchedHandler; logging.shutdown writes the rest."""
    # What no line shows need not be looked up for every record (the logging HOWTO's
    # "Optimization" list): the caller's file and line, thread, process.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [BatchedHandler(formatter(log_format), stream)]
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
