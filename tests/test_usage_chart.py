"""The usage charts: weekly orders received and notes accepted (bars), time to accept, median
and p90 (lines), as server-rendered SVG above the table; any figures draw."""

import re
from datetime import date, timedelta

import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from orders.models import Delivery, Order
from orders.usage_chart import compact, counts_chart, nice_step, turnaround_chart
from orders.usage_weeks import WeekFigures
from tests.factories import DeliveryFactory, OrderFactory

MONDAY = date(2026, 11, 23)


def week(offset, received=0, accepted=0, median=None, p90=None):
    monday = MONDAY - timedelta(weeks=offset)
    row = WeekFigures(week=monday, partner_id=None, partner_name="All partners")
    row.orders_received, row.notes_sent = received, accepted
    row.median_to_accept, row.p90_to_accept = median, p90
    return monday, row


def weeks(*rows):
    """Oldest first, as the charts take them."""
    return [week(len(rows) - 1 - index, **row) for index, row in enumerate(rows)]


def svg(chart):
    return render_to_string("orders/_usage_chart.html", {"chart": chart})


@pytest.mark.parametrize(
    ("top", "step"), [(0, 1), (1, 0.5), (4, 1), (7, 2), (85, 50), (100, 50), (101, 50), (3.7e12, 1e12)]
)
def test_the_axis_step_is_one_two_or_five_and_reaches_the_top(top, step):
    assert nice_step(top) == step
    assert nice_step(top) * 4 >= top


def test_counts_step_in_whole_numbers():
    assert nice_step(1, whole=True) == 1 and nice_step(3, whole=True) == 1 and nice_step(85, whole=True) == 50


def test_compact_labels():
    assert [compact(v) for v in (0, 1234, 12_345_678, 4.2e9, 2e12, 0.5)] == ["0", "1,234", "12.3M", "4.2B", "2T", "0.5"]


def test_bars_for_each_week_scaled_to_the_axis():
    chart = counts_chart(weeks({"received": 40, "accepted": 10}, {"received": 0, "accepted": 0}, {"received": 80}))
    assert [tick["label"] for tick in chart.ticks] == ["0", "20", "40", "60", "80"]
    received = [bar for bar in chart.bars if bar["series"] == "received"]
    assert [bar["height"] for bar in received] == [
        pytest.approx((chart.bottom - chart.top) / 2, abs=0.1),
        0,
        pytest.approx(chart.bottom - chart.top, abs=0.1),
    ]
    assert received[2]["title"] == "the week of Nov 23, 2026: 80 orders received"
    assert "Orders received per week: 0 to 80, 80 in the latest week." in chart.desc
    assert not chart.empty


def test_weeks_without_an_accepted_note_are_gaps_in_the_lines():
    hour = timedelta(hours=1)
    chart = turnaround_chart(
        weeks({"median": 2 * hour, "p90": 5 * hour}, {}, {"median": 3 * hour, "p90": 9 * hour}, {"median": hour})
    )
    median = next(line for line in chart.lines if line["series"] == "median")
    assert median["path"].count("M") == 2 and median["path"].count("L") == 1
    assert len(median["points"]) == 3
    assert chart.unit == "hours"
    assert "for 3 of 4 weeks" in chart.desc and "median 1 h 0 min" in chart.desc


def test_long_turnarounds_are_in_days():
    chart = turnaround_chart(weeks({"median": timedelta(days=3), "p90": timedelta(days=40)}))
    assert chart.unit == "days"
    assert chart.ticks[-1]["label"] == "40"


@pytest.mark.parametrize(
    "figures",
    [
        [],  # no week at all
        weeks({}),  # one empty week
        weeks({"received": 1, "accepted": 1, "median": timedelta(minutes=5), "p90": timedelta(minutes=5)}),
        weeks(*[{"received": 10**15, "accepted": 10**14, "median": timedelta(days=9000), "p90": timedelta(days=9999)}]),
        weeks(*[{"received": n % 7, "median": timedelta(hours=n) if n % 3 else None} for n in range(260)]),
        weeks({"received": 3, "median": timedelta(seconds=-30), "p90": timedelta(seconds=-5)}),
    ],
    ids=["no-weeks", "one-empty-week", "one-week", "huge", "260-weeks-with-gaps", "negative"],
)
def test_any_figures_draw_inside_the_chart(figures):
    counts, turnaround = counts_chart(figures), turnaround_chart(figures)
    assert counts.empty == (not any(row.orders_received or row.notes_sent for _, row in figures))
    assert turnaround.empty == (not any(row.median_to_accept for _, row in figures))
    for chart in (counts, turnaround):
        html = svg(chart)
        assert html.count("<svg") == 1 and 'role="img"' in html
        assert f'<title id="chart-{chart.key}-title">{chart.title}</title>' in html
        assert chart.desc and "<desc" in html
        numbers = [float(n) for n in re.findall(r'(?:x|y|cx|cy|width|height)="(-?[\d.]+)"', html)]
        assert all(0 <= n <= max(chart.width, chart.height) for n in numbers)
        assert len(chart.x_labels) <= 8
        assert ("Nothing to show for these weeks" in html) == chart.empty


@pytest.mark.django_db
def test_the_usage_page_shows_the_charts_above_the_table(client, uploader, partner):
    received = timezone.now() - timedelta(hours=3)
    order = OrderFactory(partner=partner, first_received_at=received, state=Order.State.SENT, is_test=False)
    DeliveryFactory(
        order=order, created_by=uploader, status=Delivery.Status.SENT, sent_at=received + timedelta(hours=2)
    )
    client.force_login(uploader)
    html = client.get(reverse("usage")).content.decode()
    assert html.count('<svg class="chart') == 2
    assert html.index('<svg class="chart chart-counts"') < html.index('<table class="usage">')
    assert "Orders received and notes accepted per week" in html
    assert "Time to accept: median and 90th percentile" in html
    assert "<script" not in html.split("<main")[1].split("</main>")[0]
