"""The rows of the dashboard: what each shows, in the order they stand."""

from __future__ import annotations

from collections.abc import Callable

from .breakdowns import lines_row, teams_row, users_row
from .callbacks import callbacks_row
from .durations import talk_row, wait_row
from .health import health_row
from .overview import now_row, range_row, today_row
from .service_level import service_level_row
from .shapes import Panels
from .traffic import hangup_row, traffic_row

ROWS: tuple[tuple[str, Callable[[], Panels]], ...] = (
    ("Service level", service_level_row),
    ("Abandons and callbacks", callbacks_row),
    ("Today", today_row),
    ("Right now", now_row),
    ("Selected time range", range_row),
    ("Calls over time", traffic_row),
    ("Lines", lines_row),
    ("Teams", teams_row),
    ("Users", users_row),
    ("Wait time", wait_row),
    ("Talk time", talk_row),
    ("Hangups", hangup_row),
    ("Exporter health", health_row),
)
