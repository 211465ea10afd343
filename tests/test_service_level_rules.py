"""The service-level recording rules on a real Prometheus, against values computed by hand.

One module fixture starts an exporter (`--calls.service-level-target=1s`,
`--calls.short-abandon=500ms`, two configured lines, one of them with its own thresholds) and a
real Prometheus that loads the shipped rule files, time-scaled as in `tests.stack_helpers` (one
real second plays one minute: `1h` windows last 60 s, `1d` windows 24 min, both longer than
this test). It sends a timed stream of incoming calls over HTTP, waits until Prometheus has
scraped the last of them and evaluated its rules, and the tests compare each of the twelve
recording rules with what the stream must give.

Service level and abandon rate are exact fractions of the stream. The speed of answer is the
exporter's own mean wait (`sipgate_call_wait_seconds` sum / count), which the client also
measures, roughly. Both windows hold the first scrape, taken before the first call, so every
counter starts at 0 inside them and `increase()` extrapolates numerator and denominator alike:
the ratios are exact up to rounding.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Final

import pytest
import yaml

from tests.http_helpers import answer, fetch, hangup, new_call, text_samples
from tests.stack_helpers import (
    binary,
    free_ports,
    get_json,
    is_ready,
    parse_rfc3339,
    query_scalar,
    query_vector,
    scale_rule_file,
    service,
    wait_for,
)

REPO: Final = Path(__file__).resolve().parent.parent
SCALE: Final = 60  # rule durations divided by this: 1h -> 60 s, 1d -> 24 min, 30m -> 30 s
INTERVAL: Final = "1s"  # scrape and rule evaluation interval
# The first scrape must still be inside the scaled 1h window (60 s) when the rules are read.
WINDOW_SECONDS: Final = 3600 / SCALE

SUPPORT_NUMBER: Final = "4921100000001"
HOTLINE_NUMBER: Final = "4921100000002"
UNMAPPED_NUMBER: Final = "4921100000009"  # line "other"
CUSTOMER: Final = "4917000000000"
# support keeps the defaults of the flags (target 1 s, short abandon 0.5 s); hotline has its own.
EXPORTER_CONFIG: Final = {
    "lines": {
        SUPPORT_NUMBER: "support",
        HOTLINE_NUMBER: {"line": "hotline", "service_level_target": "2s", "short_abandon": "1s"},
    }
}
THRESHOLDS: Final = {"support": (1.0, 0.5), "hotline": (2.0, 1.0), "other": (1.0, 0.5)}
LINE_NUMBERS: Final = {
    "support": SUPPORT_NUMBER,
    "hotline": HOTLINE_NUMBER,
    "other": UNMAPPED_NUMBER,
}


@dataclass(frozen=True)
class Call:
    """One call of the stream: when it starts, who answers when, and how it ends.

    `answer_after` and `end_after` are seconds after the call's own newCall; `answered_by` is
    the answering user (`voicemail` for the mailbox), None when nobody answers.
    """

    call_id: str
    line: str
    end_after: float
    cause: str = "normalClearing"
    answer_after: float | None = None
    answered_by: str = "Alice"
    direction: str = "in"


# The stream, each call starting 0.1 s after the one before. Waits sit at least 0.25 s away
# from every threshold that decides them, so a slow machine does not move a call across one.
CALLS: Final = (
    # support: target 1 s, short abandon 0.5 s.
    Call("s-fast", "support", answer_after=0.2, end_after=0.5),  # answered in target
    Call("s-medium", "support", answer_after=0.6, end_after=0.9),  # answered in target
    Call("s-slow", "support", answer_after=1.5, end_after=1.7),  # answered, too late
    Call("s-short", "support", cause="cancel", end_after=0.2),  # short abandon: not offered
    Call("s-gave-up", "support", cause="cancel", end_after=0.9),  # abandoned
    Call("s-busy", "support", cause="busy", end_after=0.3),  # offered, not answered
    Call("s-mailbox", "support", answer_after=0.4, answered_by="voicemail", end_after=0.8),
    # hotline: target 2 s, short abandon 1 s (its own, from the configuration file).
    Call("h-fast", "hotline", answer_after=0.2, end_after=0.4),  # answered in target
    Call("h-slower", "hotline", answer_after=1.5, end_after=1.7),  # in target here, not on support
    Call("h-late", "hotline", answer_after=2.6, end_after=2.8),  # answered, too late
    Call("h-short", "hotline", cause="cancel", end_after=0.75),  # short here, abandoned on support
    Call("h-gave-up", "hotline", cause="cancel", end_after=1.5),  # abandoned
    Call("h-rejected", "hotline", cause="noAnswer", end_after=0.3),  # offered, not answered
    # other: one short abandon only, so nothing offered and no ratio at all.
    Call("o-short", "other", cause="cancel", end_after=0.1),
    # Outgoing, from the support line: its wait must not count in the speed of answer.
    Call("s-out", "support", answer_after=0.3, end_after=0.6, direction="out"),
)
STAGGER: Final = 0.1


@dataclass(frozen=True)
class Counts:
    """Incoming calls of one line, counted by hand from CALLS."""

    offered: int
    in_target: int
    abandoned: int
    short_abandoned: int
    answered: int


# By hand, from the comments in CALLS.
COUNTS: Final = {
    # offered: fast, medium, slow, gave-up, busy, mailbox
    "support": Counts(offered=6, in_target=2, abandoned=1, short_abandoned=1, answered=3),
    # offered: fast, slower, late, gave-up, rejected
    "hotline": Counts(offered=5, in_target=2, abandoned=1, short_abandoned=1, answered=3),
    "other": Counts(offered=0, in_target=0, abandoned=0, short_abandoned=1, answered=0),
}
# Service level = answered in target / offered; abandon rate = abandoned / offered. Lines with
# nothing offered (other) have no series; "all" is the direction-level rule over every line.
SERVICE_LEVEL: Final = {
    "support": Fraction(2, 6),
    "hotline": Fraction(2, 5),
    "all": Fraction(4, 11),
}
ABANDON_RATE: Final = {
    "support": Fraction(1, 6),
    "hotline": Fraction(1, 5),
    "all": Fraction(2, 11),
}
# The answered calls' waits as planned, for the client-side check of the speed of answer.
PLANNED_ANSWER_SPEED: Final = {
    "support": (0.2 + 0.6 + 1.5) / 3,
    "hotline": (0.2 + 1.5 + 2.6) / 3,
    "all": (0.2 + 0.6 + 1.5 + 0.2 + 1.5 + 2.6) / 6,
}
# How far the waits the client produced may stray from the plan (scheduling, HTTP).
CLIENT_TOLERANCE: Final = 0.15

WINDOWS: Final = ("1h", "1d")
RULES: Final = tuple(
    f"{level}:{metric}:{operation}{window}"
    for window in WINDOWS
    for metric, operation in (
        ("sipgate_calls_service_level", "ratio"),
        ("sipgate_calls_abandoned", "ratio"),
        ("sipgate_call_answer_speed_seconds", "avg"),
    )
    for level in ("direction_line", "direction")
)


@dataclass
class Run:
    """What the fixture produced: the rules' values and the waits behind the speed of answer."""

    prometheus: str
    rules: dict[str, dict[tuple[str, str], float]]  # rule -> {(direction, line or "all"): value}
    answer_speed: dict[str, float]  # line or "all" -> exporter's wait sum / count
    client_waits: dict[str, list[float]]  # the waits the client produced, per line


# --- the stream ---------------------------------------------------------------------------------


def _events(calls: tuple[Call, ...]) -> list[tuple[float, str, str, str]]:
    """(seconds from the start, call id, event, body) of every event, in the order to send."""
    events = []
    for index, call in enumerate(calls):
        start = index * STAGGER
        number = LINE_NUMBERS[call.line]
        caller, callee = f"49211555{index:04d}", number
        if call.direction == "out":
            caller, callee = number, CUSTOMER
        first = new_call(call.call_id, call.direction, caller=caller, callee=callee)
        events.append((start, call.call_id, "newCall", first))
        if call.answer_after is not None:
            body = answer(call.call_id, call.direction, user=call.answered_by)
            events.append((start + call.answer_after, call.call_id, "answer", body))
        body = hangup(call.call_id, call.cause, call.direction)
        events.append((start + call.end_after, call.call_id, "hangup", body))
    return sorted(events, key=lambda event: event[0])


def send_stream(webhook: str, calls: tuple[Call, ...]) -> dict[str, dict[str, float]]:
    """Send every event at its time; return when each was sent: {call id: {event: seconds}}."""
    sent: dict[str, dict[str, float]] = {}
    begin = time.monotonic()
    for at, call_id, event, body in _events(calls):
        delay = begin + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent.setdefault(call_id, {})[event] = time.monotonic() - begin
        reply = fetch(webhook, body)
        assert reply.status == 200, f"{event} of {call_id}: {reply.status} {reply.text}"
    return sent


def client_waits(sent: Mapping[str, Mapping[str, float]]) -> dict[str, list[float]]:
    """The waits the client produced, per line: incoming calls a person answered."""
    waits: dict[str, list[float]] = {}
    for call in CALLS:
        by_person = call.answer_after is not None and call.answered_by != "voicemail"
        if call.direction == "in" and by_person:
            times = sent[call.call_id]
            waits.setdefault(call.line, []).append(times["answer"] - times["newCall"])
    return waits


# --- the exporter's own counts ------------------------------------------------------------------

COUNTERS: Final = {
    "offered": "sipgate_calls_offered_total",
    "in_target": "sipgate_calls_answered_in_target_total",
    "abandoned": "sipgate_calls_abandoned_total",
    "short_abandoned": "sipgate_calls_short_abandoned_total",
    "answered": "sipgate_call_wait_seconds_count",
}
WAIT_SUM: Final = "sipgate_call_wait_seconds_sum"


def exporter_counts(base: str) -> dict[tuple[str, str], float]:
    """The exporter's figures of incoming calls: {(metric, line): value}.

    The service-level counters, and the wait sum and count of answered calls.
    """
    wanted = {*COUNTERS.values(), WAIT_SUM}
    figures: dict[tuple[str, str], float] = {}
    for sample in text_samples(fetch(f"{base}/metrics").text):
        labels = sample.labels
        if sample.name not in wanted or labels.get("direction") != "in":
            continue
        if sample.name.startswith("sipgate_call_wait_") and labels.get("outcome") != "answered":
            continue
        figures[(sample.name, labels["line"])] = sample.value
    return figures


def calls_in_progress(base: str) -> float:
    """Calls the exporter still sees in progress."""
    samples = text_samples(fetch(f"{base}/metrics").text)
    return sum(s.value for s in samples if s.name == "sipgate_calls_active")


def answer_speed(figures: Mapping[tuple[str, str], float]) -> dict[str, float]:
    """The exporter's mean wait of answered incoming calls, per line and over all lines."""
    total, count = WAIT_SUM, COUNTERS["answered"]
    speeds = {}
    for line in ("support", "hotline"):
        speeds[line] = figures[(total, line)] / figures[(count, line)]
    lines = [line for (name, line) in figures if name == total]
    speeds["all"] = sum(figures[(total, line)] for line in lines) / sum(
        figures[(count, line)] for line in lines
    )
    return speeds


def check_stream_as_planned(
    figures: Mapping[tuple[str, str], float], waits: Mapping[str, list[float]]
) -> None:
    """Fail, naming the waits the client produced, unless the exporter counted as planned."""
    seen = {
        line: Counts(**{key: int(figures[(COUNTERS[key], line)]) for key in COUNTERS})
        for line in COUNTS
    }
    assert seen == COUNTS, (
        f"the exporter counted {seen}, the stream was planned as {COUNTS}: a call crossed a "
        f"threshold (waits the client produced: {waits}; thresholds: {THRESHOLDS})"
    )


# --- Prometheus ---------------------------------------------------------------------------------


def shipped_rule_files() -> list[Path]:
    """The rule files the shipped prometheus.yml loads."""
    config = yaml.safe_load((REPO / "prometheus.yml").read_text(encoding="utf-8"))
    return sorted({path for pattern in config["rule_files"] for path in REPO.glob(pattern)})


def write_prometheus_config(directory: Path, exporter: str) -> Path:
    """Write a prometheus.yml scraping the exporter, with the shipped rules time-scaled."""
    rule_files = []
    for path in shipped_rule_files():
        scaled = directory / path.name
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        scaled.write_text(yaml.safe_dump(scale_rule_file(document, SCALE)), encoding="utf-8")
        rule_files.append(str(scaled))
    config = {
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": rule_files,
        "scrape_configs": [{"job_name": "sipgate", "static_configs": [{"targets": [exporter]}]}],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def recording_rules_evaluated_after(prometheus: str, moment: float) -> bool:
    """Tell whether every recording-rule group began an evaluation after the Unix time moment."""
    groups = get_json(f"{prometheus}/api/v1/rules?type=record")["data"]["groups"]
    return bool(groups) and all(parse_rfc3339(group["lastEvaluation"]) > moment for group in groups)


def rule_values(prometheus: str, rule: str) -> dict[tuple[str, str], float]:
    """A recorded series' values by (direction, line); line "all" for the direction level."""
    values = {}
    for sample in query_vector(prometheus, rule):
        labels = sample["metric"]
        key = (labels.get("direction", ""), labels.get("line", "all"))
        values[key] = float(sample["value"][1])
    return values


def scraped_final(prometheus: str, figures: Mapping[tuple[str, str], float]) -> bool:
    """Tell whether Prometheus holds the exporter's final offered and answered counts."""
    queries = {
        COUNTERS["offered"]: 'sum(sipgate_calls_offered_total{job="sipgate", direction="in"})',
        COUNTERS["answered"]: 'sum(sipgate_call_wait_seconds_count{job="sipgate", '
        'direction="in", outcome="answered"})',
    }
    for name, query in queries.items():
        want = sum(value for (metric, _), value in figures.items() if metric == name)
        if query_scalar(prometheus, query) != want:
            return False
    return True


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Start exporter and Prometheus, send the stream, wait for the rules; yield what they show."""
    workdir = tmp_path_factory.mktemp("service-level")
    exporter_port, prometheus_port = free_ports(2)
    exporter_address = f"127.0.0.1:{exporter_port}"
    exporter, prometheus = f"http://{exporter_address}", f"http://127.0.0.1:{prometheus_port}"
    exporter_config = workdir / "exporter.yml"
    exporter_config.write_text(yaml.safe_dump(EXPORTER_CONFIG), encoding="utf-8")
    commands = {
        "exporter": [
            sys.executable,
            "-m",
            "exporter",
            f"--web.listen-address={exporter_address}",
            "--webhook.verify-signature=false",  # the stream is not signed
            f"--state.path={workdir / 'state.db'}",
            f"--config.file={exporter_config}",
            "--calls.service-level-target=1s",
            "--calls.short-abandon=500ms",
        ],
        "prometheus": [
            binary("prometheus", package="prometheus"),
            f"--config.file={write_prometheus_config(workdir, exporter_address)}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
    }
    with contextlib.ExitStack() as running:
        services = [
            running.enter_context(service(name, argv, workdir, REPO))
            for name, argv in commands.items()
        ]
        for url in (exporter, prometheus):
            wait_for(partial(is_ready, url), 30, f"{url}/-/ready", alive=services)
        # Prometheus 2.42 scrapes for the first time about 5 s after it starts; the first scrape
        # must come before the first call, so that every counter starts at 0 in the windows.
        wait_for(
            lambda: query_scalar(prometheus, 'up{job="sipgate"}') == 1,
            30,
            "the first scrape",
            alive=services,
        )
        first_scrape = query_scalar(prometheus, 'timestamp(up{job="sipgate"})')  # or the next
        assert first_scrape is not None

        sent = send_stream(f"{exporter}/webhook", CALLS)
        wait_for(lambda: calls_in_progress(exporter) == 0, 15, "every call to end", services)
        figures = exporter_counts(exporter)
        waits = client_waits(sent)
        check_stream_as_planned(figures, waits)

        wait_for(partial(scraped_final, prometheus, figures), 15, "the last scrape", services)
        seen = time.time()
        wait_for(
            partial(recording_rules_evaluated_after, prometheus, seen),
            15,
            "the rules to be evaluated on the last scrape",
            alive=services,
        )
        rules = {rule: rule_values(prometheus, rule) for rule in RULES}
        assert time.time() - first_scrape < WINDOW_SECONDS - 5, (
            "the test ran longer than the scaled 1h window: the first scrape fell out of it"
        )
        yield Run(prometheus, rules, answer_speed(figures), waits)


# --- the tests ----------------------------------------------------------------------------------


def _expected(rule: str, run: Run) -> dict[tuple[str, str], float]:
    """What a rule must show, by direction and line ("all" for the direction-level rule)."""
    by_line = rule.startswith("direction_line:")
    if "service_level" in rule:
        table: Mapping[str, float] = {line: float(value) for line, value in SERVICE_LEVEL.items()}
    elif "abandoned" in rule:
        table = {line: float(value) for line, value in ABANDON_RATE.items()}
    else:
        table = run.answer_speed
    return {("in", line): value for line, value in table.items() if (line != "all") == by_line}


@pytest.mark.parametrize("rule", RULES)
def test_rule_shows_the_value_computed_by_hand(run: Run, rule: str) -> None:
    expected = _expected(rule, run)
    assert run.rules[rule] == pytest.approx(expected, rel=1e-12), rule


def test_the_speed_of_answer_is_the_wait_the_client_produced(run: Run) -> None:
    measured = {line: sum(waits) / len(waits) for line, waits in run.client_waits.items()}
    every = [wait for waits in run.client_waits.values() for wait in waits]
    measured["all"] = sum(every) / len(every)
    for line, planned in PLANNED_ANSWER_SPEED.items():
        assert measured[line] == pytest.approx(planned, abs=CLIENT_TOLERANCE), line
        assert run.answer_speed[line] == pytest.approx(measured[line], abs=CLIENT_TOLERANCE), line


def test_a_line_with_nothing_offered_has_no_ratio(run: Run) -> None:
    # Line other had one short abandon: offered 0, so the `> 0` guard leaves it out.
    for rule in RULES:
        if rule.startswith("direction_line:"):
            assert set(run.rules[rule]) == {("in", "support"), ("in", "hotline")}, rule
    offered = query_vector(
        run.prometheus, 'direction_line:sipgate_calls_offered:increase1h{line="other"}'
    )
    assert [float(sample["value"][1]) for sample in offered] == [0]


def test_ratios_are_plain_numbers(run: Run) -> None:
    for rule, values in run.rules.items():
        assert all(math.isfinite(value) for value in values.values()), (rule, values)
