"""Logging: lines queued to a listener thread that writes them, text or JSON, and masked numbers."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.logs import QueuedStreamHandler, formatter, mask_number, setup_logging
from tests.programs import clean_env

ROOT = Path(__file__).resolve().parents[1]
MOMENT = 1_800_000_000.25


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root, waitress_queue = logging.getLogger(), logging.getLogger("waitress.queue")
    handlers, level, queue_level = root.handlers[:], root.level, waitress_queue.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    waitress_queue.setLevel(queue_level)


class ThreadRecordingStream(io.StringIO):
    """A stream that remembers which threads wrote to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[str] = set()

    def write(self, text: str) -> int:
        self.writers.add(threading.current_thread().name)
        return super().write(text)


def listener_threads() -> int:
    return sum(thread.name.endswith("(_monitor)") for thread in threading.enumerate())


def close_root_handlers() -> None:
    """What logging.shutdown does to the handlers at exit."""
    for handler in logging.getLogger().handlers:
        handler.close()


@pytest.mark.usefixtures("restored_logging")
def test_lines_are_written_by_the_listener_and_all_of_them_once_closed() -> None:
    stream = ThreadRecordingStream()
    setup_logging("info", "text", stream)
    logger = logging.getLogger("exporter.test")
    for number in range(2000):
        logger.info("line %d", number)
    logger.debug("not at info")

    close_root_handlers()

    lines = stream.getvalue().splitlines()
    assert [line.rsplit(" ", 1)[1] for line in lines] == [str(n) for n in range(2000)]
    assert " INFO exporter.test: line 0" in lines[0]
    assert threading.current_thread().name not in stream.writers, "the logging thread only queues"
    assert listener_threads() == 0


@pytest.mark.usefixtures("restored_logging")
def test_json_lines_keep_the_exception_apart_from_the_message() -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    try:
        raise ValueError("bad form")
    except ValueError:
        logging.getLogger("exporter.web").exception("webhook %s failed", "newCall")

    close_root_handlers()

    entry = json.loads(stream.getvalue())
    assert entry["level"] == "error"
    assert entry["logger"] == "exporter.web"
    assert entry["message"] == "webhook newCall failed"
    assert entry["exception"].startswith("Traceback")
    assert entry["exception"].endswith("ValueError: bad form")


@pytest.mark.usefixtures("restored_logging")
def test_setting_up_again_stops_the_previous_listener_and_writes_each_line_once() -> None:
    threads_before = listener_threads()
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", "text", first)
    logging.getLogger("exporter.test").info("to the first")

    setup_logging("warn", "text", second)
    assert first.getvalue().endswith("exporter.test: to the first\n"), "written before it stops"
    logging.getLogger("exporter.test").info("below warn")
    logging.getLogger("exporter.test").warning("to the second")
    close_root_handlers()

    assert listener_threads() == threads_before
    assert "to the second" not in first.getvalue()
    assert second.getvalue().count("\n") == 1
    assert second.getvalue().endswith("WARNING exporter.test: to the second\n")
    assert [type(h) for h in logging.getLogger().handlers] == [QueuedStreamHandler]


@pytest.mark.usefixtures("restored_logging")
def test_waitress_queue_warnings_are_left_out_even_at_debug() -> None:
    setup_logging("debug", "text", io.StringIO())
    assert logging.getLogger("waitress.queue").level == logging.ERROR


def test_lines_still_queued_at_exit_are_written() -> None:
    # A stream slower than the logging thread, so that most lines are still queued at exit.
    script = (
        "import logging, sys, time\n"
        "from exporter.logs import setup_logging\n"
        "class Slow:\n"
        "    def write(self, text):\n"
        "        time.sleep(0.002)\n"
        "        return sys.stderr.write(text)\n"
        "    def flush(self):\n"
        "        sys.stderr.flush()\n"
        "setup_logging('info', 'json', Slow())\n"
        "for number in range(300):\n"
        "    logging.getLogger('exporter.exit').info('line %d', number)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=clean_env(),
        check=False,
    )

    assert result.returncode == 0, result.stderr
    messages = [json.loads(line)["message"] for line in result.stderr.splitlines()]
    assert messages == [f"line {n}" for n in range(300)]


def test_text_lines_show_time_level_logger_and_message() -> None:
    record = logging.LogRecord(
        "exporter.calls", logging.WARNING, __file__, 1, "call %s", ("c1",), None
    )
    record.created, record.msecs = MOMENT, 250.0
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(MOMENT))

    assert formatter("text").format(record) == f"{stamp},250 WARNING exporter.calls: call c1"


def test_json_lines_show_time_level_logger_and_message() -> None:
    record = logging.LogRecord(
        "exporter.calls", logging.INFO, __file__, 1, "call %s", ("c1",), None
    )
    record.created = MOMENT

    assert json.loads(formatter("json").format(record)) == {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(MOMENT)),
        "level": "info",
        "logger": "exporter.calls",
        "message": "call c1",
    }


@pytest.mark.parametrize(
    ("number", "shown"),
    [("492111234567", "4921******67"), ("anonymous", "anonymous"), (None, "-"), ("110", "***")],
)
def test_phone_numbers_are_masked(number: str | None, shown: str) -> None:
    assert mask_number(number) == shown
