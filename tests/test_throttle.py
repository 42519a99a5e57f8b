"""The throttle counter (hcoint/throttle.py): one count per address and window, shared by
every process and thread through the database, and old windows cleared away."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection, connections
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hcoint.throttle import WEBHOOK_BAD_TOKEN
from orders.models import ThrottleCount

THREADS = 8


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL, as in production")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_failures_are_each_counted_and_exactly_one_reaches_the_limit(settings):
    settings.WEBHOOK_BAD_TOKEN_LIMIT = THREADS // 2
    start = threading.Barrier(THREADS)

    def fail():
        try:
            start.wait()
            return WEBHOOK_BAD_TOKEN.record_failure("203.0.113.7")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(THREADS) as pool:
        over = list(pool.map(lambda _: fail(), range(THREADS)))

    assert ThrottleCount.objects.get().count == THREADS
    assert over.count(True) == THREADS - settings.WEBHOOK_BAD_TOKEN_LIMIT + 1
    assert WEBHOOK_BAD_TOKEN.failures("203.0.113.7") == THREADS


@pytest.mark.django_db
def test_keys_and_throttles_count_apart(settings):
    settings.WEBHOOK_BAD_TOKEN_LIMIT = 2
    assert WEBHOOK_BAD_TOKEN.record_failure("203.0.113.7") is False
    assert WEBHOOK_BAD_TOKEN.record_failure("203.0.113.7") is True
    assert WEBHOOK_BAD_TOKEN.is_over("203.0.113.7")
    assert not WEBHOOK_BAD_TOKEN.is_over("203.0.113.8")
    assert WEBHOOK_BAD_TOKEN.failures("203.0.113.8") == 0


@pytest.mark.django_db
def test_windows_older_than_a_day_are_deleted_when_a_new_window_begins(settings):
    now = timezone.now()
    WEBHOOK_BAD_TOKEN.record_failure("203.0.113.7")
    ThrottleCount.objects.update(window_start=F("window_start") - timedelta(days=1, minutes=1))
    with mock.patch("hcoint.throttle.timezone.now", return_value=now + next_window(settings)):
        WEBHOOK_BAD_TOKEN.record_failure("203.0.113.7")
    assert list(ThrottleCount.objects.values_list("count", flat=True)) == [1]


def next_window(settings):
    return timedelta(seconds=settings.WEBHOOK_BAD_TOKEN_WINDOW_SECONDS)


def deletes(captured):
    return [q["sql"] for q in captured.captured_queries if q["sql"].startswith("DELETE")]


@pytest.mark.django_db
def test_old_windows_are_pruned_at_most_once_per_window_by_a_process(settings, monkeypatch):
    # The table-wide DELETE runs on the unauthenticated webhook path: not for every new
    # address in a window, only for the first failure this process counts in it.
    monkeypatch.setattr("hcoint.throttle._pruned_window", {})  # as in a process just started
    now = timezone.now()
    later = now + next_window(settings)
    with mock.patch("hcoint.throttle.timezone.now", return_value=later), CaptureQueriesContext(connection) as first:
        WEBHOOK_BAD_TOKEN.record_failure("203.0.113.7")
    with mock.patch("hcoint.throttle.timezone.now", return_value=later), CaptureQueriesContext(connection) as others:
        WEBHOOK_BAD_TOKEN.record_failure("203.0.113.8")
        WEBHOOK_BAD_TOKEN.record_failure("203.0.113.9")
    assert len(deletes(first)) == 1
    assert deletes(others) == []
    later += next_window(settings)
    with mock.patch("hcoint.throttle.timezone.now", return_value=later), CaptureQueriesContext(connection) as next_one:
        WEBHOOK_BAD_TOKEN.record_failure("203.0.113.8")
    assert len(deletes(next_one)) == 1
