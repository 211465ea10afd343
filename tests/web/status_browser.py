"""A real exporter server in this process, and Debian's chromium to look at its status page."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import Browser, Page, Playwright

from exporter.config.command_line import parse_config
from exporter.config.reload import ConfigReloader
from exporter.metrics import new_requests
from exporter.recorder import Recorder
from exporter.service import build_server, build_tracker, open_store
from tests.conftest import FakeClock
from tests.http_helpers import fetch
from tests.web.test_guard import sign

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = ("--no-sandbox", "--disable-gpu", "--headless")
EXAMPLE_CONFIG: Final = Path(__file__).parents[2] / "examples" / "sipgate-exporter.yml"
PUBLIC_URL: Final = "https://calls.example.com/webhook"


def launch(playwright: Playwright) -> Browser:
    """Debian's chromium, headless; fail, never skip, where it is missing: CI installs it."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"the status page tests need Debian's chromium at {CHROMIUM}: run `make system-deps` "
            "(or `apt-get install chromium`)",
            pytrace=False,
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))


@dataclass
class Exporter:
    """A running exporter: where it answers, its clock, and the key its events are signed with."""

    base: str
    clock: FakeClock
    recorder: Recorder
    key: rsa.RSAPrivateKey | None

    def post(self, body: str, status: int = 200, signed: bool = True) -> None:
        """POST an event, signed when the exporter checks signatures and `signed`."""
        headers = {}
        if self.key is not None and signed:
            headers["X-Sipgate-Signature"] = sign(self.key, body.encode())
        assert fetch(self.base + "/webhook", body, headers).status == status


@contextmanager
def serve(
    flags: Sequence[str], clock: FakeClock, key: rsa.RSAPrivateKey | None = None
) -> Iterator[Exporter]:
    """Serve on a free port, wired as the program wires itself from `flags`, until the end."""
    defaults = ["--web.listen-address=127.0.0.1:0", "--state.path="]
    config = parse_config([*defaults, *flags], {})
    tracker = build_tracker(config)
    reloader = None
    if config.config_file is not None:
        reloader = ConfigReloader(config.config_file, tracker.configure_labels)
        reloader.load()
    recorder = Recorder(tracker, new_requests(), open_store(config), clock)
    recorder.restore()
    group, _ = build_server(config, recorder, reloader=reloader)
    thread = threading.Thread(target=group.run, name="status-page-server", daemon=True)
    thread.start()
    try:
        signs = key if config.verify_signature else None
        yield Exporter(f"http://127.0.0.1:{group.servers[0].port}", clock, recorder, signs)
    finally:
        group.stop()
        thread.join(timeout=15)
        recorder.close()


def checks(page: Page) -> dict[str, str]:
    """Each check on the page and its level: ok, warning or danger."""
    pairs: list[tuple[str, str]] = page.eval_on_selector_all(
        ".checks li", "items => items.map(item => [item.dataset.check, item.className])"
    )
    return dict(pairs)


def failing(page: Page) -> dict[str, str]:
    """The checks that did not pass, and their levels."""
    return {name: level for name, level in checks(page).items() if level != "ok"}


def card(page: Page, name: str) -> tuple[str, str]:
    """The figure and the note of one card of the Receiving section."""
    return page.inner_text(f"#{name} .big"), page.inner_text(f"#{name} .muted")
