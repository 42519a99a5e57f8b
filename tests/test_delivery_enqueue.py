"""Queueing a delivery is committing its row; idle workers are woken once it commits, never before."""

import select
from unittest import mock

import psycopg2
import pytest
from django.db import DatabaseError, connection, transaction

from orders import delivery as delivery_module
from orders.delivery import NOTIFY_CHANNEL, delivery_enqueue, wake_workers
from orders.models import Delivery
from tests.delivery_fakes import T0
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def test_a_committed_delivery_is_claimable_with_nothing_else_to_queue(partner, uploader):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )

    assert delivery.status == Delivery.Status.PENDING
    assert list(Delivery.objects.claimable(delivery.created_at)) == [delivery]


@pytest.fixture
def notifications():
    """What a worker LISTENing on the workers' channel from its own connection receives:
    call it to read the channel names of the NOTIFYs that arrived within `wait` seconds."""
    params = connection.settings_dict
    listener = psycopg2.connect(
        host=params["HOST"] or None, port=params["PORT"] or None, user=params["USER"] or None, dbname=params["NAME"]
    )
    listener.autocommit = True
    with listener.cursor() as cursor:
        cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def received(wait):
        select.select([listener], [], [], wait)
        listener.poll()
        channels = [n.channel for n in listener.notifies]
        listener.notifies.clear()
        return channels

    yield received
    listener.close()


needs_notify = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll"
)


@needs_notify
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_rolled_back_send_leaves_no_delivery_and_wakes_nobody(partner, uploader, notifications):
    order = OrderFactory(partner=partner, sending=True)

    with pytest.raises(Boom), transaction.atomic():
        DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
        raise Boom

    assert not Delivery.objects.exists()
    assert notifications(wait=0.5) == []


@needs_notify
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_workers_are_woken_only_once_the_delivery_is_committed(partner, uploader, notifications):
    delivery = DeliveryFactory(order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0)

    with transaction.atomic():
        delivery_enqueue(delivery=delivery)
        assert notifications(wait=0.5) == []
    assert notifications(wait=5) == [NOTIFY_CHANNEL]


@needs_notify
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_wake_up_is_a_notify_on_the_workers_channel(notifications):
    wake_workers()
    assert notifications(wait=5) == [NOTIFY_CHANNEL]


def test_a_failed_wake_up_is_logged_and_not_raised(caplog):
    broken = mock.MagicMock(vendor="postgresql")
    broken.cursor.side_effect = DatabaseError("gone")
    with mock.patch.object(delivery_module, "connection", broken):
        wake_workers()
    assert [r.event for r in caplog.records if hasattr(r, "event")] == ["delivery.wake_failed"]
