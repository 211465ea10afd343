"""`python -m bench`: run every measurement, print the table and write bench/RESULTS.md."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import expiry, load, memory, replicas, restart, rows, signature
from bench.corpus import throwaway_key, write_corpus, write_public_key
from bench.load import Workspace
from bench.report import Row, machine, text_table, write_markdown
from bench.settings import FULL, QUICK, Settings
from bench.stats import median
from bench.targets import BASELINE
from bench.wrk import FIXED_RATE_NICENESS, wrk_binary

DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 s runs: a smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown results file")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    wrk_binary()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sipgate-bench-") as workdir:
        table, notes = run(Path(workdir), settings)
    elapsed = time.monotonic() - started
    print(text_table(table))
    for note in notes:
        print(f"note: {note}")
    command = shlex.join(["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])])
    header = _header(command, settings, elapsed)
    write_markdown(args.out, table, header, notes, explanation(settings))
    print(f"written to {args.out} in {elapsed:.0f} s")
    return 0


def run(workdir: Path, settings: Settings) -> tuple[list[Row], list[str]]:
    """Every measurement, in one run; returns the rows and notes on failed checks."""
    _progress("generating request bodies (signing with a throwaway RSA key)")
    key = throwaway_key()
    signed_events = settings.signed_events_per_second * settings.seconds
    space = Workspace(
        workdir,
        write_corpus(workdir / "unsigned.tsv", settings.corpus_events, settings.connections),
        write_corpus(workdir / "signed.tsv", signed_events, settings.connections, key),
        write_public_key(key, workdir / "signature-key.pem"),
        settings,
    )
    _progress("webhook throughput at saturation, and while scraped")
    saturation = load.saturate(space)
    rate = load.latency_rate(saturation, settings)
    _progress(f"newCall latency at {rate:.0f} req/s")
    latency = load.latency(space, rate)
    _progress("memory with open calls")
    rss = memory.measure(workdir, settings.memory_steps, settings.connections, settings.threads)
    _progress("restart with a big state file")
    state = workdir / "big-state.db"
    restart.build_state(state, settings.restart_open_calls, settings.restart_journal)
    ready = restart.measure(workdir, state, settings.repetitions, settings.threads)
    _progress("expiry sweeps and snapshots")
    sweeps = expiry.measure(workdir, settings.expiry_open_calls, settings.repetitions)
    _progress("signature checks by key size")
    checks = signature.measure(settings.repetitions, settings.signature_checks)
    _progress("two replicas on PostgreSQL behind haproxy, and one embedded exporter")
    replicated = replicas.measure(space)
    baseline_throughput = median(saturation.throughput[BASELINE.name])
    table = [
        *rows.webhook_rows(saturation, latency),
        *rows.scrape_rows(saturation),
        *rows.memory_rows(rss),
        *rows.restart_rows(ready, settings.restart_journal),
        *rows.expiry_rows(sweeps, settings.expiry_open_calls, baseline_throughput),
        *rows.signature_rows(checks, baseline_throughput),
        *rows.replica_rows(replicated),
    ]
    return table, space.notes


def explanation(settings: Settings) -> str:
    """What the rows measure, for the Markdown file."""
    return f"""## How it was measured

- Every server is a fresh process on 127.0.0.1 with {settings.threads} waitress threads. The
  baseline (`bench/baseline.py`) parses the form body with `parse_qsl`, increments one counter
  and answers newCall with the exporter's XML. The exporter runs `python -m exporter` with
  `--state.path=` (persistence off) or a new state file (durable), and
  `--webhook.verify-signature=false` or `=true` with a throwaway RSA key (defaults).
- Load: `wrk -t{settings.connections} -c{settings.connections}` replays bodies planned by
  `exporter.simulate.traffic.TrafficPlanner` (newCall, answer, hangup in order, each call on one
  connection, calls interleaved), {settings.seconds} s a run, {settings.repetitions}
  repetition(s), targets interleaved within each repetition. Figures are medians; a ratio is
  the median of the per-repetition ratios.
- Latency: the same mix at a fixed rate per connection (a quarter of the slowest saturated
  throughput, scheduled in `delay()`), newCall only, timed in wrk's Lua from request to response;
  {settings.latency_repetitions} repetitions of {settings.latency_seconds} s, targets interleaved,
  wrk at niceness {FIXED_RATE_NICENESS} so that its threads do not preempt the server's.
  A run's p99 rests on a few dozen requests and moves by a factor of two from run to run, so
  each percentile is taken over the newCalls of all repetitions together, and the interval is
  a bootstrap over the repetitions, resampled in pairs with their reference's. CPU per request
  is the server process's user and system time during those runs (all its threads, waitress's
  included) over the requests answered.
- Scrapes: a thread GETs /metrics every second during a saturated run of the defaults.
- Memory: VmRSS of an exporter without state file after wrk sent newCalls that never end.
- Restart: process start to the first 200 from /-/ready, default flags plus `--calls.max-open`
  raised so that replay evicts nothing; the state file holds a snapshot with the open calls and
  a journal just under the size that forces an early snapshot.
- Expiry and snapshots: timed in-process on a `CallTracker`; the ratio says how many baseline
  requests' worth of server time one costs.
- Signature checks: `Guard.check_body` in-process with a valid signature, for the bench's
  2,048-bit key and for the size of sipgate's key (4,096 bits); signing a whole corpus with
  4,096 bits would take minutes, so the webhook rows use the smaller key.
- Replicas: a private PostgreSQL cluster (Debian's, flushing every commit as by default), two
  exporters with `--state.url` and haproxy with `haproxy/haproxy.cfg` in front, against one
  exporter with a durable state file, each fresh for every run (a new database each time), the
  same unsigned corpus through haproxy, runs alternating. Latency at a quarter of the slower
  one's saturated throughput, pooled as above.
"""


def _header(command: str, settings: Settings, elapsed: float) -> dict[str, str]:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick" if settings.seconds == QUICK.seconds else "full"
    return {
        "date": now,
        **machine(),
        "command": f"`{command}` ({mode}; `make bench` runs it), took {elapsed:.0f} s",
    }


_START = time.monotonic()


def _progress(message: str) -> None:
    print(f"bench: {time.monotonic() - _START:5.1f}s {message}", file=sys.stderr, flush=True)
