"""The results table: rows with a reference, a ratio and a bar, as plain text and Markdown."""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

FINDINGS_MARKER: Final = (
    "<!-- Everything below this line is kept when the results are rewritten -->"
)


@dataclass(frozen=True, slots=True)
class Bar:
    """A limit from the issue, on the ratio or on the value itself."""

    text: str
    limit: float
    at_least: bool
    on_ratio: bool = True

    def passed(self, row: Row) -> bool:
        """Whether `row` meets this bar."""
        measured = row.ratio if self.on_ratio else row.value
        return measured >= self.limit if self.at_least else measured <= self.limit


@dataclass(frozen=True, slots=True)
class Row:
    """One measured figure: medians of the runs, and the median ratio to its reference."""

    section: str
    measure: str
    unit: str
    reference: float
    reference_name: str
    value: float
    ratio: float
    bar: Bar | None = None
    # Where the ratio lies with INTERVAL_CONFIDENCE, for figures that can be resampled.
    interval: tuple[float, float] | None = None

    def verdict(self) -> str:
        """`pass`, `FAIL`, or empty without a bar."""
        if self.bar is None:
            return ""
        return "pass" if self.bar.passed(self) else "FAIL"


# The share of bootstrap resamples inside a row's interval.
INTERVAL_CONFIDENCE: Final = 0.9
HEADER: Final = (
    "Measure",
    "Reference",
    "Exporter",
    "Ratio",
    f"{INTERVAL_CONFIDENCE:.0%} interval",
    "Bar",
    "Result",
)


def cells(row: Row) -> tuple[str, ...]:
    """The row's table cells as text."""
    return (
        row.measure,
        f"{quantity(row.reference, row.unit)} ({row.reference_name})",
        quantity(row.value, row.unit),
        _ratio(row.ratio),
        f"{_ratio(row.interval[0])} to {_ratio(row.interval[1])}" if row.interval else "",
        row.bar.text if row.bar else "",
        row.verdict(),
    )


def _ratio(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def quantity(value: float, unit: str) -> str:
    """A value with its unit, at a sensible precision."""
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.1f} µs"
        if value < 1.0:
            return f"{value * 1e3:.2f} ms"
        return f"{value:.2f} s"
    if unit == "B":
        if value >= 1 << 20:
            return f"{value / (1 << 20):.1f} MiB"
        return f"{value:,.0f} B"
    return f"{value:,.0f} {unit}"


def text_table(rows: list[Row]) -> str:
    """A fixed-width table for the terminal, grouped by section."""
    table = [HEADER, *(cells(row) for row in rows)]
    widths = [max(len(line[column]) for line in table) for column in range(len(HEADER))]
    lines, section = [], ""
    for row, line in zip([None, *rows], table, strict=True):
        if row is not None and row.section != section:
            section = row.section
            lines.append(f"-- {section}")
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(rows: list[Row]) -> str:
    """A Markdown table, with each section as a bold first cell."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    section = ""
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append(f"| **{section}** |" + " |" * (len(HEADER) - 1))
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells(row)) + " |")
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """Cores, CPU model, Python and wrk versions, kernel."""
    return {
        "cores (nproc)": _output(["nproc"]),
        "CPU": _cpu_model(),
        "Python": platform.python_version(),
        "wrk": _output(["wrk", "--version"]).splitlines()[0].split(" Copyright")[0],
        "kernel": platform.release(),
    }


def write_markdown(
    path: Path, rows: list[Row], header: dict[str, str], notes: list[str], explain: str
) -> None:
    """Write the results, keeping whatever follows FINDINGS_MARKER in the existing file."""
    kept = ""
    if path.exists():
        _, marker, rest = path.read_text(encoding="utf-8").partition(FINDINGS_MARKER)
        kept = marker + rest if marker else ""
    parts = [
        "# Benchmark results\n",
        "Written by `make bench` (bench/cli.py); each ratio compares the exporter with a "
        "reference measured in the same run, because the machines are shared and noisy.\n",
        "\n".join(f"- **{key}:** {value}" for key, value in header.items()) + "\n",
        markdown_table(rows) + "\n",
        explain,
    ]
    if notes:
        parts.append("Checks that did not come out clean:\n\n" + "\n".join(f"- {n}" for n in notes))
    text = "\n".join(parts).rstrip() + "\n"
    path.write_text(text + ("\n" + kept if kept else ""), encoding="utf-8")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "unknown"
