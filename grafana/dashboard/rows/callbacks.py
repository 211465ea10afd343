"""The row of abandoned calls and the callbacks owed."""

from __future__ import annotations

from dashboard.panels import (
    stat,
    target,
    timeseries,
)
from dashboard.queries import (
    in_range,
    own,
    per_minute,
    quantile_in_range,
    sum_by,
)

from .shapes import (
    NAMED,
    PENDING,
    SHORT_ABANDONED,
    UNNAMED,
    Panels,
    bars,
    series,
)


def callbacks_row() -> Panels:
    """Return short abandons, unnamed answers and the callbacks owed to missed callers."""
    delay = own("sipgate_callback_delay_seconds_bucket")
    dropped = own("sipgate_callbacks_dropped_total")
    return [
        bars(
            "Short abandons by line in range",
            "Incoming calls where the caller hung up within the short-abandon time "
            "(--calls.short-abandon, 5 s): not offered, so in neither the service level nor "
            "the abandon rate. They are owed a callback all the same.",
            "short",
            in_range(SHORT_ABANDONED, "line"),
            "line",
            6,
        ),
        bars(
            "Unnamed answers by line in range",
            "Incoming calls answered only by a party sipgate named no user for: a queue, an "
            "announcement, a *9 pickup or a team member's external phone. They count as "
            "answered by a person; many of them on a queue line make its service level look "
            "better than the callers felt it.",
            "short",
            in_range(UNNAMED, "line"),
            "line",
            6,
        ),
        bars(
            "Callbacks by result in range",
            "Debts to missed callers closed in the selected time range: called_back (a team "
            "member's outgoing call to the number was answered), called_again (the caller "
            "called again and a person answered), expired (neither within "
            "--callbacks.expire-after, 3 days).",
            "short",
            in_range(own("sipgate_callbacks_total"), "result"),
            "result",
            6,
        ),
        stat(
            "Callback delay in range",
            "Time from the end of a caller's first missed call to the answer that settled the "
            "debt, for debts settled in the selected time range: median and 90th percentile. "
            "Empty when none was settled.",
            "s",
            [
                target(quantile_in_range(0.5, delay), "median", instant=True),
                target(quantile_in_range(0.9, delay), "90th percentile", instant=True),
            ],
            width=6,
            height=8,
            text_mode=NAMED,
        ),
        series(
            "Callbacks pending by line",
            "Missed callers owed a callback, by the line they called.",
            "short",
            sum_by("line", PENDING),
            "line",
        ),
        timeseries(
            "Callback debts dropped",
            "Debts dropped per minute, oldest first, because --callbacks.max-pending numbers "
            "were owed a callback. Should stay at zero; raise the limit.",
            "cpm",
            [target(per_minute(dropped, ""), "dropped")],
        ),
    ]
