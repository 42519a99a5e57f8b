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


def test_a_rolled_back_send_leaves_no_delivery_and_wakes_nobody(partner, uploader):
    order = OrderFactory(partner=partner, sending=True)

    with mock.patch.object(delivery_module, "wake_workers") as wake:
        with pytest.raises(Boom), transaction.atomic():
            DeliveryFactory(order=order, created_by=uploader, created_at=T0, enqueue=True)
            raise Boom
        assert not Delivery.objects.exists()
    wake.assert_not_called()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_workers_are_woken_only_once_the_delivery_is_committed(partner, uploader):
    delivery = DeliveryFactory(order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0)

    with mock.patch.object(delivery_module, "wake_workers") as wake:
        with transaction.atomic():
            delivery_enqueue(delivery=delivery)
            wake.assert_not_called()
        wake.assert_called_once_with()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_wake_up_is_a_notify_on_the_workers_channel():
    params = connection.settings_dict
    listener = psycopg2.connect(
        host=params["HOST"] or None, port=params["PORT"] or None, user=params["USER"] or None, dbname=params["NAME"]
    )
    listener.autocommit = True
    try:
        with listener.cursor() as cursor:
            cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
        wake_workers()
        select.select([listener], [], [], 5)
        listener.poll()
        assert [n.channel for n in listener.notifies] == [NOTIFY_CHANNEL]
    finally:
        listener.close()


def test_a_failed_wake_up_is_logged_and_not_raised(caplog):
    broken = mock.MagicMock(vendor="postgresql")
    broken.cursor.side_effect = DatabaseError("gone")
    with mock.patch.object(delivery_module, "connection", broken):
        wake_workers()
    assert [r.event for r in caplog.records if hasattr(r, "event")] == ["delivery.wake_failed"]
