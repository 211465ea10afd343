"""How long and how big: the full benchmark and the quick smoke run."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.storage.sqlite import MAX_JOURNAL


@dataclass(frozen=True, slots=True)
class Settings:
    """Durations, repetitions and sizes of one benchmark run."""

    # Saturated runs move by 10-20 % from one to the next here: five short pairs, not three long.
    seconds: int = 4
    repetitions: int = 5
    connections: int = 8
    threads: int = 4
    # The fixed offered load for latency, as a share of the slowest saturated throughput.
    latency_load: float = 0.25
    # A run's p99 rests on its few dozen slowest newCalls, and this machine's hiccups move it
    # by a factor of two from one run to the next: many short runs, whose samples are pooled.
    latency_repetitions: int = 8
    latency_seconds: int = 4
    corpus_events: int = 40_000
    # Enough signed bodies that one run at saturation never starts over (ids would repeat).
    signed_events_per_second: int = 7_000
    render_samples: int = 20
    memory_steps: tuple[int, ...] = (10_000, 100_000)
    restart_open_calls: int = 100_000
    # The longest journal a running exporter leaves: it snapshots once this many are written.
    restart_journal: int = MAX_JOURNAL
    expiry_open_calls: int = 100_000
    signature_checks: int = 2_000


FULL = Settings()
QUICK = Settings(
    seconds=1,
    repetitions=1,
    latency_repetitions=2,
    latency_seconds=1,
    corpus_events=6_000,
    signed_events_per_second=2_500,
    render_samples=3,
    memory_steps=(1_000, 4_000),
    restart_open_calls=2_000,
    restart_journal=2_000,
    expiry_open_calls=5_000,
    signature_checks=50,
)
