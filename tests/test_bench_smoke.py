"""A quick run of the benchmark harness: the table comes out whole, with sane ratios.

It checks the harness, not the exporter's speed: figures from one-second runs mean nothing.
"""

from __future__ import annotations

import base64
import math
import shutil
from pathlib import Path

import pytest
import webtest
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256

from bench.baseline import create_app
from bench.cli import main
from bench.corpus import throwaway_key


@pytest.fixture(autouse=True)
def _wrk_is_installed() -> None:
    # `make test` installs wrk; a missing tool fails here rather than hiding the test.
    assert shutil.which("wrk"), "wrk is missing: apt-get install wrk (make test does)"


# Rows per numbered section: webhook, scrape, memory, restart, expiry.
ROWS_PER_SECTION = {"1": 20, "2": 2, "3": 4, "4": 2, "5": 7, "6": 3}


def table_rows(markdown: str) -> dict[str, list[list[str]]]:
    """Rows of the results table by section number, each as its cells."""
    sections: dict[str, list[list[str]]] = {}
    current = ""
    for line in markdown.splitlines():
        if not line.startswith("| ") or line.startswith("| Measure"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        if cells[0].startswith("**"):
            current = cells[0].strip("*").partition(".")[0]
            continue
        sections.setdefault(current, []).append(cells)
    return sections


def test_quick_run_writes_every_row_with_positive_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "RESULTS.md"

    assert main(["--quick", "--out", str(out)]) == 0

    printed = capsys.readouterr().out
    sections = table_rows(out.read_text(encoding="utf-8"))
    assert {name: len(rows) for name, rows in sections.items()} == ROWS_PER_SECTION
    for rows in sections.values():
        for cells in rows:
            ratio = float(cells[3].replace(",", ""))
            assert ratio > 0, cells
            assert math.isfinite(ratio), cells
            assert cells[0] in printed
    text = out.read_text(encoding="utf-8")
    latencies = [cells for cells in sections["1"] if cells[0].startswith("newCall")]
    assert len(latencies) == 10
    for cells in latencies:
        low, high = (float(bound) for bound in cells[4].split(" to "))
        assert 0 < low <= high, cells
    for field in ("cores (nproc)", "CPU", "Python", "command"):
        assert f"**{field}:**" in text


def test_the_signed_baseline_refuses_a_body_whose_signature_does_not_match(
    tmp_path: Path,
) -> None:
    key = throwaway_key()
    app = webtest.TestApp(create_app("http://127.0.0.1/webhook", key.public_key()))
    body = b"event=newCall&direction=in&callId=1&from=1&to=2"
    signature = base64.b64encode(key.sign(body, PKCS1v15(), SHA256())).decode()
    form = "application/x-www-form-urlencoded"

    good = app.post("/webhook", body, {"X-Sipgate-Signature": signature}, content_type=form)
    bad = app.post(
        "/webhook",
        body + b"&x=1",
        {"X-Sipgate-Signature": signature},
        content_type=form,
        expect_errors=True,
    )

    assert good.status_int == 200
    assert b"onAnswer" in good.body
    assert bad.status_int == 403
