"""Turn the measurements into table rows: medians, paired ratios and the issue's bars."""

from __future__ import annotations

from typing import Final

from bench.expiry import Expiry
from bench.load import Latency, Saturation
from bench.memory import Memory
from bench.replicas import EMBEDDED, REPLICAS, Replicated
from bench.report import INTERVAL_CONFIDENCE, Bar, Row
from bench.restart import Restart
from bench.signature import Signatures
from bench.stats import median, paired_ratio, pooled_percentile, pooled_ratio_interval
from bench.targets import BASELINE, DEFAULT, DURABLE, PLAIN, SIGNED_BASELINE

THROUGHPUT_BAR: Final = Bar("≥ 0.75", 0.75, at_least=True)
P99_BAR: Final = Bar("≤ 2", 2.0, at_least=False)
SCRAPED_BAR: Final = Bar("≥ 0.95", 0.95, at_least=True)
BYTES_PER_CALL: Final = 2048.0
MEMORY_BAR: Final = Bar("≤ 2 KiB/call", BYTES_PER_CALL, at_least=False, on_ratio=False)
READY_BAR: Final = Bar("≤ 2 s", 2.0, at_least=False, on_ratio=False)
REPLICAS_THROUGHPUT_BAR: Final = Bar("≥ 500 req/s", 500.0, at_least=True, on_ratio=False)
REPLICAS_P99_BAR: Final = Bar("≤ 5", 5.0, at_least=False)
# The bars: the exporter with durable state against the baseline, and the defaults,
# which add sipgate's RSA-4096 signature check, against the baseline doing the same check.
BARRED: Final = ((DURABLE, BASELINE), (DEFAULT, SIGNED_BASELINE))
# Every comparison shown: each configuration against the baseline, and the signature pair.
COMPARED: Final = (
    (SIGNED_BASELINE, BASELINE),
    (PLAIN, BASELINE),
    (DURABLE, BASELINE),
    (DEFAULT, BASELINE),
    (DEFAULT, SIGNED_BASELINE),
)

WEBHOOK: Final = "1. Webhook"
SCRAPE: Final = "2. Scrape"
MEMORY: Final = "3. Memory"
RESTART: Final = "4. Restart"
EXPIRY: Final = "5. Expiry, snapshots and signatures (in-process)"
REPLICATED: Final = "6. Two replicas on PostgreSQL behind haproxy"


def webhook_rows(saturation: Saturation, latency: Latency) -> list[Row]:
    """Throughput per comparison, then newCall p50 and p99 and CPU per request at the fixed load."""
    at = f"at {latency.rate:,.0f} req/s"
    latencies = [
        _pooled(
            f"newCall p{q} {at}, {target.label}",
            latency.samples[reference.name],
            latency.samples[target.name],
            q,
            bar if (target, reference) in BARRED else None,
            reference.name,
        )
        for q, bar in ((50, None), (99, P99_BAR))
        for target, reference in COMPARED
    ]
    return [
        *_compared("throughput", "req/s", saturation.throughput, THROUGHPUT_BAR),
        *latencies,
        *_compared(f"server CPU per request {at}", "s", latency.cpu, None),
    ]


def _compared(
    measure: str, unit: str, by_target: dict[str, list[float]], bar: Bar | None
) -> list[Row]:
    """One paired row per comparison; `bar` applies to the barred ones only."""
    return [
        _paired(
            WEBHOOK,
            f"{measure}, {target.label}",
            unit,
            by_target[reference.name],
            by_target[target.name],
            bar if (target, reference) in BARRED else None,
            reference_name=reference.name,
        )
        for target, reference in COMPARED
    ]


def scrape_rows(saturation: Saturation) -> list[Row]:
    """/metrics render time against the baseline's, and throughput while scraped."""
    size, series = saturation.page
    render = _paired(
        SCRAPE,
        f"GET /metrics, defaults ({series} series, {size:,} bytes)",
        "s",
        saturation.render[BASELINE.name],
        saturation.render[DEFAULT.name],
        None,
    )
    scraped = _paired(
        SCRAPE,
        f"throughput while scraped every 1 s ({median(saturation.scrapes):.0f} scrapes), defaults",
        "req/s",
        saturation.throughput[DEFAULT.name],
        saturation.scraped,
        SCRAPED_BAR,
        reference_name="unscraped",
    )
    return [render, scraped]


def memory_rows(memory: Memory) -> list[Row]:
    """RSS by open calls against the idle baseline, and bytes per open call against the bar."""
    rows = [
        Row(
            MEMORY,
            f"RSS, {calls:,} open calls",
            "B",
            memory.baseline,
            "baseline idle",
            rss,
            rss / memory.baseline,
        )
        for calls, rss in memory.by_open_calls.items()
    ]
    per_call = memory.bytes_per_call()
    rows.append(
        Row(
            MEMORY,
            "RSS per open call",
            "B",
            BYTES_PER_CALL,
            "bar",
            per_call,
            per_call / BYTES_PER_CALL,
            MEMORY_BAR,
        )
    )
    return rows


def restart_rows(restart: Restart, journal: int) -> list[Row]:
    """Start to /-/ready, empty and with the big state, against the baseline's start."""
    loaded = f"ready with {restart.open_calls:,.0f} open calls + {journal:,} journal records"
    return [
        _paired(RESTART, "ready, empty state", "s", restart.baseline, restart.empty, None),
        _paired(RESTART, loaded, "s", restart.baseline, restart.loaded, READY_BAR),
    ]


def expiry_rows(expiry: Expiry, open_calls: int, baseline_throughput: float) -> list[Row]:
    """In-process costs, as multiples of one baseline request's share of the server's time."""
    request = 1.0 / baseline_throughput
    measures = (
        (f"sweep, {open_calls:,} open, none expire", expiry.nothing),
        (f"sweep, {open_calls:,} open, all expire (tracker lock held)", expiry.everything),
        (f"  + logging each expired call ({open_calls:,} lines)", expiry.logging),
        (f"snapshot, {open_calls:,} open: export_state (tracker lock held)", expiry.snapshot_lock),
        (f"snapshot, {open_calls:,} open: total with JSON, zlib, SQLite", expiry.snapshot_total),
    )
    return [
        Row(
            EXPIRY,
            measure,
            "s",
            request,
            "1 baseline request",
            median(values),
            median(values) / request,
        )
        for measure, values in measures
    ]


def signature_rows(signatures: Signatures, baseline_throughput: float) -> list[Row]:
    """One signature check by key size, as a share of one baseline request's server time."""
    request = 1.0 / baseline_throughput
    return [
        Row(
            EXPIRY,
            f"signature check, one request, {bits:,}-bit key"
            + (" (the webhook rows)" if bits == 2048 else " (sipgate's)"),
            "s",
            request,
            "1 baseline request",
            median(values),
            median(values) / request,
        )
        for bits, values in signatures.by_bits.items()
    ]


def replica_rows(replicated: Replicated) -> list[Row]:
    """Two replicas' throughput against the embedded exporter's, then their newCall latency."""
    embedded = "embedded, durable"
    throughput = _paired(
        REPLICATED,
        "throughput, two replicas together (PostgreSQL flushing every commit)",
        "req/s",
        replicated.throughput[EMBEDDED],
        replicated.throughput[REPLICAS],
        REPLICAS_THROUGHPUT_BAR,
        reference_name=embedded,
    )
    latencies = [
        _pooled(
            f"newCall p{q} at {replicated.rate:,.0f} req/s, two replicas",
            replicated.samples[EMBEDDED],
            replicated.samples[REPLICAS],
            q,
            bar,
            embedded,
            REPLICATED,
        )
        for q, bar in ((50, None), (99, REPLICAS_P99_BAR))
    ]
    return [throughput, *latencies]


def _pooled(
    measure: str,
    references: list[tuple[float, ...]],
    runs: list[tuple[float, ...]],
    q: float,
    bar: Bar | None,
    reference_name: str,
    section: str = WEBHOOK,
) -> Row:
    """The q-th percentile of all repetitions' samples, with a bootstrap interval of the ratio."""
    reference = pooled_percentile(references, q)
    value = pooled_percentile(runs, q)
    interval = pooled_ratio_interval(runs, references, q, INTERVAL_CONFIDENCE)
    return Row(
        section, measure, "s", reference, reference_name, value, value / reference, bar, interval
    )


def _paired(
    section: str,
    measure: str,
    unit: str,
    references: list[float],
    values: list[float],
    bar: Bar | None,
    reference_name: str = "baseline",
) -> Row:
    return Row(
        section,
        measure,
        unit,
        median(references),
        reference_name,
        median(values),
        paired_ratio(values, references),
        bar,
    )
