"""The status page in a real browser, Debian's chromium driven by Playwright, on a real server.

`make screenshots` sets STATUS_PAGE_SCREENSHOTS=docs to write docs/status-*.png from here.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright

from exporter import __version__
from tests.conftest import FakeClock
from tests.http_helpers import CALLEE, CALLER, answer, hangup, new_call
from tests.programs import Start
from tests.web.status_browser import (
    EXAMPLE_CONFIG,
    PUBLIC_URL,
    Exporter,
    card,
    checks,
    failing,
    launch,
    serve,
)
from tests.web.test_guard import public_pem

_SHOTS = os.environ.get("STATUS_PAGE_SCREENSHOTS")
# Resolved at import: each test runs in its own tmp_path.
SCREENSHOTS: Final = Path(_SHOTS).resolve() if _SHOTS else None
WIDE: Final = ViewportSize(width=960, height=900)
CONFIG_FILE: Final = "sipgate-exporter.yml"
STATE_PATH: Final = "data/sipgate-exporter.db"
GRAFANA: Final = "https://grafana.example.com/d/sipgate?orgId=1&refresh=30s"
EVERY_CHECK: Final = {"ready", "signature", "sources", "public-url", "https", "config-file"}
ALL_WELL: Final = (
    "--webhook.allowed-networks=127.0.0.0/8",
    f"--webhook.public-url={PUBLIC_URL}",
    f"--config.file={CONFIG_FILE}",
    f"--state.path={STATE_PATH}",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=WIDE, permissions=["clipboard-read", "clipboard-write"])
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work in tmp_path, with the example configuration file, so that the page shows short paths."""
    shutil.copy(EXAMPLE_CONFIG, tmp_path / CONFIG_FILE)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC, so that the page reads the same on every machine."""
    with monkeypatch.context() as patch:
        patch.setenv("TZ", "UTC")
        time.tzset()
        yield
    time.tzset()


@pytest.fixture
def key_flag(tmp_path: Path, private_key: rsa.RSAPrivateKey) -> str:
    """The flag that makes the exporter trust the tests' signing key instead of sipgate's."""
    pem = tmp_path / "sipgate.pem"
    pem.write_bytes(public_pem(private_key))
    return f"--webhook.signature-key={pem}"


def test_all_well_is_green_and_says_so_for_every_check(
    page: Page, clock: FakeClock, key_flag: str, private_key: rsa.RSAPrivateKey
) -> None:
    with serve([*ALL_WELL, key_flag], clock, private_key) as exporter:
        page.goto(exporter.base + "/")

        assert page.get_attribute("#verdict", "data-level") == "ok"
        assert page.inner_text("#verdict") == "All is well."
        assert set(checks(page)) == EVERY_CHECK
        assert failing(page) == {}
        green = page.eval_on_selector("#verdict", "e => getComputedStyle(e).backgroundColor")
        assert green == "rgb(218, 251, 225)", "the inline style did not apply"


@pytest.mark.parametrize(
    ("change", "drop", "expected"),
    [
        (["--webhook.verify-signature=false"], None, {"signature": "danger"}),
        ([], "--webhook.public-url", {"public-url": "warning", "https": "warning"}),
        (["--web.listen-address=0.0.0.0:0"], "--webhook.allowed-networks", {"sources": "warning"}),
        ([], "--webhook.allowed-networks", {}),  # on the loopback address, none is needed
    ],
    ids=["signature-off", "url-derived", "no-allow-list", "loopback-only"],
)
def test_each_flag_turns_its_warning_on(
    page: Page,
    clock: FakeClock,
    key_flag: str,
    change: list[str],
    drop: str | None,
    expected: dict[str, str],
) -> None:
    flags = [flag for flag in ALL_WELL if drop is None or not flag.startswith(drop)]
    with serve([*flags, key_flag, *change], clock) as exporter:
        page.goto(exporter.base + "/")

        assert failing(page) == expected
        level = "danger" if "danger" in expected.values() else "warning" if expected else "ok"
        assert page.get_attribute("#verdict", "data-level") == level
        for name in expected:
            assert page.inner_text(f'[data-check="{name}"] .fix'), f"{name} says no fix"


def test_the_figures_follow_the_events_posted(
    page: Page, clock: FakeClock, key_flag: str, private_key: rsa.RSAPrivateKey, utc: None
) -> None:
    with serve([*ALL_WELL, key_flag], clock, private_key) as exporter:
        page.goto(exporter.base + "/")
        assert card(page, "last-event") == ("no events yet", "nothing received so far")
        assert card(page, "events-today")[0] == "0"
        assert page.inner_text("#refused") == "None."

        exporter.post(new_call("1"))
        page.reload()
        assert card(page, "in-progress") == ("1", "1 ringing, 0 talking")
        assert card(page, "calls-today") == ("1", "1 incoming, 0 outgoing")

        clock.advance(5)
        exporter.post(answer("1"))
        exporter.post(new_call("2", direction="out"))
        exporter.post(new_call("3"), status=403, signed=False)
        clock.advance(42)
        page.reload()
        assert card(page, "in-progress") == ("2", "1 ringing, 1 talking")
        assert card(page, "calls-today") == ("2", "1 incoming, 1 outgoing")
        assert card(page, "events-today") == ("3", "since the exporter started at 08:00 UTC")
        assert card(page, "last-event") == ("42 seconds ago", "2027-01-15 08:00:05 UTC")
        assert page.inner_text("#refused tbody") == "no valid signature (403)\t1\t1"

        exporter.post(hangup("1"))
        exporter.post(hangup("2", direction="out"))
        page.reload()
        assert card(page, "in-progress") == ("0", "0 ringing, 0 talking")
        assert card(page, "events-today")[0] == "5"
        content = page.content()
        for number in (CALLER, CALLEE, "4921112345670", "4921112345672"):
            assert number not in content


def test_the_configuration_in_force_names_lines_teams_and_thresholds(
    page: Page, clock: FakeClock, key_flag: str
) -> None:
    flags = [
        *ALL_WELL,
        key_flag,
        "--calls.service-level-target=30s",
        f"--web.grafana-url={GRAFANA}",
    ]
    with serve(flags, clock) as exporter:
        page.goto(exporter.base + "/")

        assert page.inner_text("#lines") == "3: support, sales, hotline"
        assert page.inner_text("#teams") == "3: support, sales, backoffice"
        targets = page.inner_text("#targets")
        assert targets.startswith(
            "answered within 30s counts in target; a missed call shorter than 5s"
        )
        assert (
            "hotline: answered within 15s counts in target; a missed call shorter than 3s"
            in targets
        )
        assert page.inner_text("#state") == (
            f"State: kept in {STATE_PATH} and its journal, across restarts."
        )
        assert f"version {__version__}" in page.inner_text("header")
        assert CONFIG_FILE in page.inner_text("#setup")
        assert page.get_attribute("#links a >> text=Grafana", "href") == GRAFANA


def test_the_copy_button_copies_the_webhook_url(
    page: Page, clock: FakeClock, key_flag: str
) -> None:
    with serve([key_flag], clock) as exporter:
        page.goto(exporter.base + "/")
        shown = page.inner_text("#webhook-url")
        assert shown == exporter.base + "/webhook"

        page.click("#copy")

        page.wait_for_function("document.getElementById('copy-status').textContent !== ''")
        assert page.inner_text("#copy-status") == "Copied."
        assert page.evaluate("navigator.clipboard.readText()") == shown


def test_without_the_clipboard_api_the_url_is_selected(
    page: Page, clock: FakeClock, key_flag: str
) -> None:
    # As on plain http from another machine, which is no secure context.
    page.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    with serve([key_flag], clock) as exporter:
        page.goto(exporter.base + "/")
        page.click("#copy")

        assert page.evaluate("window.getSelection().toString()") == exporter.base + "/webhook"
        assert page.inner_text("#copy-status") in ("Copied.", "Selected: press Ctrl+C to copy.")


def test_nothing_is_fetched_from_elsewhere_and_nothing_breaks_the_policy(
    page: Page, clock: FakeClock, key_flag: str
) -> None:
    requested: list[str] = []
    complaints: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: complaints.append(message.text))
    page.on("pageerror", lambda error: complaints.append(str(error)))
    with serve([*ALL_WELL, key_flag], clock) as exporter:
        page.goto(exporter.base + "/")
        page.click("#copy")
        page.wait_for_function("document.getElementById('copy-status').textContent !== ''")

    assert requested == [exporter.base + "/"]
    assert complaints == []


def test_it_is_readable_on_a_phone(browser: Browser, clock: FakeClock, key_flag: str) -> None:
    phone = browser.new_context(viewport=ViewportSize(width=360, height=740), is_mobile=True)
    try:
        page = phone.new_page()
        with serve([key_flag], clock) as exporter:
            page.goto(exporter.base + "/")
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            assert page.is_visible("#copy")
    finally:
        phone.close()


def test_a_real_exporter_process_serves_the_page(page: Page, start: Start) -> None:
    program = start()  # the tests' processes run with the signature check off
    page.goto(program.base + "/")

    assert failing(page)["signature"] == "danger"
    assert "state-0.db" in page.inner_text("#state")
    program.post(new_call("1"))
    page.reload()
    assert card(page, "calls-today")[0] == "1"


STATES: Final = {
    # name: flags, whether events arrive, headers of the browser's requests, the verdict
    "all-well": ([*ALL_WELL, f"--web.grafana-url={GRAFANA}"], True, {}, "ok"),
    "signature-off": ([*ALL_WELL, "--webhook.verify-signature=false"], True, {}, "danger"),
    # A fresh start behind a proxy, without --webhook.public-url.
    "no-events": (
        [
            "--web.trusted-proxies=127.0.0.1/32",
            f"--config.file={CONFIG_FILE}",
            f"--state.path={STATE_PATH}",
        ],
        False,
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "calls.example.com"},
        "warning",
    ),
}


@pytest.mark.parametrize("state", list(STATES))
def test_screenshot_of_each_state(
    context: BrowserContext,
    clock: FakeClock,
    key_flag: str,
    private_key: rsa.RSAPrivateKey,
    utc: None,
    tmp_path: Path,
    state: str,
) -> None:
    flags, events, headers, verdict = STATES[state]
    target = SCREENSHOTS or tmp_path
    context.set_extra_http_headers(headers)
    page = context.new_page()
    with serve([*flags, key_flag], clock, private_key) as exporter:
        if events:
            _a_morning(exporter)
        page.goto(exporter.base + "/")
        assert page.inner_text("#webhook-url") == PUBLIC_URL
        assert page.get_attribute("#verdict", "data-level") == verdict
        assert (card(page, "last-event")[0] == "no events yet") is not events
        page.screenshot(path=target / f"status-{state}.png", full_page=True)


def _a_morning(exporter: Exporter) -> None:
    """A few calls: answered, missed, one still talking, one ringing, and a stranger refused."""
    for call in ("1", "2", "3"):
        exporter.post(new_call(call))
        exporter.clock.advance(4)
    exporter.post(answer("1"))
    exporter.post(new_call("4", direction="out"))
    exporter.post(answer("4", direction="out"))
    exporter.clock.advance(60)
    exporter.post(hangup("1"))
    exporter.post(hangup("2", cause="cancel"))
    exporter.post(new_call("5"))
    exporter.post("event=newCall", status=403 if exporter.key else 400, signed=False)
    exporter.clock.advance(17)
