"""Webhook load: throughput at saturation, newCall latency at a fixed load, and under scrapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.corpus import Corpus
from bench.procs import Process
from bench.scrape import Scraper, render_seconds, sample_sum
from bench.settings import Settings
from bench.stats import median
from bench.targets import BASELINE, DEFAULT, TARGETS, Target, start
from bench.wrk import WrkResult, replay


@dataclass
class Workspace:
    """Where servers run, and the corpora and key they use."""

    workdir: Path
    unsigned: Corpus
    signed: Corpus
    public_key: Path
    settings: Settings
    notes: list[str] = field(default_factory=list)

    def corpus(self, target: Target) -> Corpus:
        """Signed bodies for a signature-checking exporter, unsigned for the rest."""
        return self.signed if target.signed else self.unsigned

    def start(self, target: Target) -> Process:
        """A fresh server for `target`."""
        return start(target, self.workdir, self.settings.threads, self.public_key)


@dataclass
class Saturation:
    """Per repetition: throughput of each target, while scraped, and /metrics render times."""

    throughput: dict[str, list[float]] = field(default_factory=dict)
    scraped: list[float] = field(default_factory=list)
    scrapes: list[int] = field(default_factory=list)
    render: dict[str, list[float]] = field(default_factory=dict)
    page: tuple[int, int] = (0, 0)


@dataclass
class Latency:
    """Per target and repetition: every newCall's latency in seconds at the fixed load `rate`."""

    rate: float
    samples: dict[str, list[tuple[float, ...]]] = field(default_factory=dict)
    # Per repetition: the server's CPU time per request, all its threads together.
    cpu: dict[str, list[float]] = field(default_factory=dict)


def saturate(space: Workspace) -> Saturation:
    """Throughput of every target flat out, and of the defaults while scraped (None)."""
    result = Saturation()
    settings = space.settings
    for repetition in range(settings.repetitions):
        # Every other repetition backwards, so that drift in the machine's load evens out.
        order: list[Target | None] = [*TARGETS, None]
        for target in order if repetition % 2 == 0 else reversed(order):
            if target is None:
                throughput, scrapes = _scraped(space)
                result.scraped.append(throughput)
                result.scrapes.append(scrapes)
            else:
                _saturate_one(space, target, result)
    return result


def _saturate_one(space: Workspace, target: Target, result: Saturation) -> None:
    server = space.start(target)
    try:
        run, _ = _replay(space, server, target, None)
        if target in (BASELINE, DEFAULT):
            seconds, size, series = render_seconds(server.url, space.settings.render_samples)
            result.render.setdefault(target.name, []).append(seconds)
            if target is DEFAULT:
                result.page = (size, series)
    finally:
        server.stop()
    result.throughput.setdefault(target.name, []).append(run.throughput)


def latency(space: Workspace, rate: float) -> Latency:
    """newCall latency of every target at `rate` requests per second in total."""
    result = Latency(rate)
    settings = space.settings
    per_connection = rate / settings.connections
    for repetition in range(settings.latency_repetitions):
        for target in TARGETS if repetition % 2 == 0 else reversed(TARGETS):
            server = space.start(target)
            try:
                run, used = _replay(space, server, target, per_connection, settings.latency_seconds)
            finally:
                server.stop()
            if not run.newcall_us:
                raise RuntimeError(f"no newCall answered for {target.name} at {rate:.0f}/s")
            seconds = tuple(value / 1e6 for value in run.newcall_us)
            result.samples.setdefault(target.name, []).append(seconds)
            result.cpu.setdefault(target.name, []).append(used / run.requests)
    return result


def latency_rate(saturation: Saturation, settings: Settings) -> float:
    """The fixed offered load: a share of the slowest target's median saturated throughput."""
    slowest = min(median(values) for values in saturation.throughput.values())
    return max(float(settings.connections), round(slowest * settings.latency_load, -1))


def _scraped(space: Workspace) -> tuple[float, int]:
    server = space.start(DEFAULT)
    scraper = Scraper(server.url)
    try:
        scraper.start()
        run, _ = _replay(space, server, DEFAULT, None)
    finally:
        scraper.stop()
        server.stop()
    return run.throughput, len(scraper.durations)


def _replay(
    space: Workspace,
    server: Process,
    target: Target,
    rate: float | None,
    seconds: int | None = None,
) -> tuple[WrkResult, float]:
    """One wrk run, checked; also the server's CPU seconds during it, before the check's scrapes."""
    corpus = space.corpus(target)
    duration = seconds or space.settings.seconds
    before = server.cpu_seconds()
    run = replay(server.url, corpus.path, corpus.connections, duration, rate)
    used = server.cpu_seconds() - before
    if target.exporter:
        _check(space, server, target, run)
    return run, used


def _check(space: Workspace, server: Process, target: Target, run: WrkResult) -> None:
    """Every request must have been a valid, matched event: anything else skews the figures."""
    rejected = sample_sum(server.url, "sipgate_webhook_rejected_requests_total")
    if rejected:
        raise RuntimeError(f"{target.name}: the exporter rejected {rejected:.0f} requests")
    unmatched = sample_sum(server.url, "sipgate_events_unmatched_total")
    if unmatched or (run.wraps and target.signed):
        space.notes.append(
            f"{target.name}: {unmatched:.0f} unmatched events in {run.requests} requests "
            f"({run.wraps} connection(s) started the corpus over)"
        )
