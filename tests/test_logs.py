"""Logging: lines written in batches by a writer thread, text or JSON, and masked numbers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from exporter.logs import BatchedHandler, formatter, mask_number, setup_logging
from tests.http_helpers import wait_for


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_lines_reach_the_stream_from_the_writer_thread(log_format: str) -> None:
    stream = io.StringIO()
    setup_logging("info", log_format, stream)
    logging.getLogger("exporter.test").info("call %s ended", "c1")
    logging.getLogger("exporter.test").debug("not at info")
    line = wait_for(lambda: stream.getvalue() or None, timeout=5)
    assert "call c1 ended" in line
    assert "not at info" not in stream.getvalue()
    if log_format == "json":
        entry = json.loads(line.splitlines()[0])
        assert entry["level"] == "info"
        assert entry["message"] == "call c1 ended"
    assert all(not isinstance(h, logging.StreamHandler) for h in logging.getLogger().handlers)


class CountingStream(io.StringIO):
    """A stream that counts the writes it gets."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_a_logging_thread_only_queues_and_the_writer_writes_a_batch_at_once() -> None:
    stream = CountingStream()
    handler = BatchedHandler(formatter("text"), stream, interval=3600)
    logger = logging.getLogger("exporter.test.batch")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for number in range(1000):
            logger.warning("line %d", number)
        assert stream.getvalue() == "", "nothing is written in the thread that logs"
        handler.flush()
        lines = stream.getvalue().splitlines()
        assert [line.rsplit(" ", 1)[1] for line in lines] == [str(n) for n in range(1000)]
        assert stream.writes == 1
        logger.warning("after")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()
    assert stream.getvalue().endswith(": after\n"), "closing writes what is left"


@pytest.mark.parametrize(
    ("number", "shown"),
    [("492111234567", "4921******67"), ("anonymous", "anonymous"), (None, "-"), ("110", "***")],
)
def test_phone_numbers_are_masked(number: str | None, shown: str) -> None:
    assert mask_number(number) == shown


def test_times_formatted_once_a_second_read_as_the_standard_formatter_writes_them() -> None:
    standard = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    text, json_lines = formatter("text"), formatter("json")
    for created in (1_800_000_000.0, 1_800_000_000.5, 1_800_000_001.25, 1_700_000_000.999):
        record = logging.LogRecord("exporter", logging.INFO, __file__, 1, "call %s", ("c1",), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert text.format(record) == standard.format(record)
        stamp = standard.formatTime(record, "%Y-%m-%dT%H:%M:%S%z")
        assert json.loads(json_lines.format(record))["time"] == stamp
