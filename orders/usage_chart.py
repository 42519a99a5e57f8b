"""Usage you can see: the weekly totals of orders/usage.py as two small SVG charts.

- "Orders received and notes accepted": two bars per week (all partners, as the table's
  "All partners" rows; notes accepted are the table's "Notes sent": Redox accepted them).
- "Time to accept": the median and the 90th percentile per week, as two lines, in hours
  or, past two days, in days.

This module computes the geometry only (coordinates, ticks, labels, and the text a screen
reader gets); `templates/orders/_usage_chart.html` draws it as inline SVG. No JavaScript,
no inline style (the CSP forbids it): colours come from app.css classes, and the p90 line
is dashed, so the series differ by more than colour. The table stays beneath the charts.

Whatever the figures, the charts draw: no week, one week, weeks without a value (a gap in
the line, a zero bar) and values in the billions (a rounded axis and compact labels).
"""

import math
from dataclasses import dataclass, field

from orders.usage_weeks import humanize_duration

WIDTH = 560
HEIGHT = 230
LEFT, RIGHT, TOP, BOTTOM = 58, 12, 28, 40
TICKS = 4
MAX_X_LABELS = 8


@dataclass
class Chart:
    key: str
    title: str
    desc: str
    unit: str  # the y axis's unit, in words
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    ticks: list = field(default_factory=list)  # {"y", "label"}
    x_labels: list = field(default_factory=list)  # {"x", "label"}
    bars: list = field(default_factory=list)  # {"x", "y", "width", "height", "series", "title"}
    lines: list = field(default_factory=list)  # {"series", "path", "points": [{"x", "y", "title"}]}
    legend: list = field(default_factory=list)  # {"series", "label"}
    empty: bool = False

    @property
    def label_x(self):
        return self.left - 6

    @property
    def middle_x(self):
        return (self.left + self.right) / 2

    @property
    def middle_y(self):
        return (self.top + self.bottom) / 2


def nice_step(top, ticks=TICKS, *, whole=False):
    """The axis step: 1, 2 or 5 times a power of ten, so `ticks` steps reach at least `top`
    (with `whole`, at least 1: counts have no half orders)."""
    if top <= 0 or not math.isfinite(top):
        return 1
    raw = max(top / ticks, 1) if whole else top / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power  # pragma: no cover (the loop always returns)


def compact(value):
    """1234 → "1,234"; 12,345,678 → "12.3M"; 0.5 → "0.5": short enough for an axis."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.2g}"


def _axis(chart, largest, *, whole=False):
    """Ticks for 0..largest (rounded up); returns the function from a value to its y."""
    step = nice_step(largest, whole=whole)
    top_value = step * TICKS
    height = chart.bottom - chart.top

    def y_of(value):
        return chart.bottom - height * min(max(value, 0), top_value) / top_value

    chart.ticks = [{"y": _r(y_of(step * n)), "label": compact(step * n)} for n in range(TICKS + 1)]
    return y_of


def _x_slots(chart, mondays):
    """The centre and width of each week's slot, oldest on the left; and the week labels."""
    count = max(len(mondays), 1)
    slot = (chart.right - chart.left) / count
    every = math.ceil(count / MAX_X_LABELS)
    centres = [chart.left + slot * (index + 0.5) for index in range(len(mondays))]
    # Counted from the newest week, so the latest is always labelled.
    chart.x_labels = [
        {"x": _r(centre), "label": f"{monday:%b} {monday.day}"}
        for index, (centre, monday) in enumerate(zip(centres, mondays, strict=True))
        if (len(mondays) - 1 - index) % every == 0
    ]
    return centres, slot


def _r(value):
    return round(value, 1)


def _week_text(monday):
    return f"the week of {monday:%b} {monday.day}, {monday.year}"


def counts_chart(weeks):
    """Bars: orders received and notes accepted per week. `weeks` is [(monday, totals row)], oldest first."""
    chart = Chart(key="counts", title="Orders received and notes accepted per week", desc="", unit="per week")
    chart.legend = [
        {"series": "received", "label": "Orders received"},
        {"series": "accepted", "label": "Notes accepted by Redox"},
    ]
    received = [row.orders_received for _, row in weeks]
    accepted = [row.notes_sent for _, row in weeks]
    largest = max([*received, *accepted, 0])
    chart.empty = largest == 0
    y_of = _axis(chart, largest, whole=True)
    centres, slot = _x_slots(chart, [monday for monday, _ in weeks])
    bar = max(min(slot * 0.36, 28), 1)
    for centre, (monday, row) in zip(centres, weeks, strict=True):
        for series, value, offset, what in (
            ("received", row.orders_received, -bar, "orders received"),
            ("accepted", row.notes_sent, 0, "notes accepted"),
        ):
            y = y_of(value)
            chart.bars.append(
                {
                    "x": _r(centre + offset),
                    "y": _r(y),
                    "width": _r(bar),
                    "height": _r(chart.bottom - y),
                    "series": series,
                    "title": f"{_week_text(monday)}: {value:,} {what}",
                }
            )
    if not weeks:
        chart.desc = "No weeks to show."
    else:
        first, last = weeks[0][0], weeks[-1][0]
        chart.desc = (
            f"{len(weeks)} week{'s' if len(weeks) != 1 else ''}, {_week_text(first)} to {_week_text(last)}. "
            f"Orders received per week: {min(received):,} to {max(received):,}, {received[-1]:,} in the latest week. "
            f"Notes accepted per week: {min(accepted):,} to {max(accepted):,}, {accepted[-1]:,} in the latest week. "
            "The table below has every figure."
        )
    return chart


def turnaround_chart(weeks):
    """Lines: the median and 90th percentile time to accept per week; weeks without a note leave a gap."""
    chart = Chart(key="turnaround", title="Time to accept: median and 90th percentile", desc="", unit="")
    chart.legend = [
        {"series": "median", "label": "Median"},
        {"series": "p90", "label": "90th percentile"},
    ]
    # The p90 first: the median's filled dot is drawn over the p90's ring where they meet.
    seconds = {
        "p90": [_seconds(row.p90_to_accept) for _, row in weeks],
        "median": [_seconds(row.median_to_accept) for _, row in weeks],
    }
    known = [value for values in seconds.values() for value in values if value is not None]
    largest = max(known, default=0)
    in_days = largest > 2 * 86400
    divisor, chart.unit = (86400, "days") if in_days else (3600, "hours")
    chart.empty = not known
    y_of = _axis(chart, largest / divisor)
    centres, _ = _x_slots(chart, [monday for monday, _ in weeks])
    radius = 3 if len(weeks) <= 60 else 1.5
    radii = {"median": radius, "p90": radius * 1.7}
    for series, values in seconds.items():
        path, points, pen_down = [], [], False
        for centre, (monday, row), value in zip(centres, weeks, values, strict=True):
            if value is None:
                pen_down = False  # a gap: the next point starts a new segment
                continue
            x, y = _r(centre), _r(y_of(value / divisor))
            path.append(f"{'L' if pen_down else 'M'}{x} {y}")
            pen_down = True
            duration = row.median_to_accept if series == "median" else row.p90_to_accept
            name = "median" if series == "median" else "90th percentile"
            points.append({"x": x, "y": y, "title": f"{_week_text(monday)}: {name} {humanize_duration(duration)}"})
        chart.lines.append({"series": series, "path": " ".join(path), "points": points, "radius": radii[series]})
    with_notes = [(monday, row) for monday, row in weeks if row.median_to_accept is not None]
    if not with_notes:
        chart.desc = "No note was accepted in these weeks, so there is no time to accept to show."
    else:
        monday, row = with_notes[-1]
        chart.desc = (
            f"Time from an order's arrival to Redox accepting its first note, in {chart.unit}, "
            f"for {len(with_notes)} of {len(weeks)} weeks (weeks without an accepted note are gaps). "
            f"Latest, {_week_text(monday)}: median {row.median_text}, 90th percentile {row.p90_text}. "
            "The table below has every figure."
        )
    return chart


def _seconds(value):
    return value.total_seconds() if value is not None else None


def usage_charts(usage):
    """Both charts for a Usage (orders/usage.py): the all-partners row of each week, oldest first."""
    weeks = [(monday, usage.by_week[monday][0]) for monday in reversed(usage.weeks)]
    return [counts_chart(weeks), turnaround_chart(weeks)]
