"""Queueing a delivery's job commits or rolls back with the transaction that created the delivery."""

import pytest
from django.db import transaction
from django_tasks import task_backends
from django_tasks_db.models import DBTaskResult

from orders.delivery import FIRST_ATTEMPT_PRIORITY, delivery_enqueue
from orders.models import Delivery
from orders.tasks import deliver
from tests.delivery_fakes import make_delivery, make_order

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def test_the_job_is_a_row_saved_with_the_delivery(partner, uploader):
    delivery = make_delivery(make_order(partner), uploader)

    [job] = DBTaskResult.objects.all()
    assert job.status == "READY"
    assert job.task_path == deliver.module_path
    assert job.args_kwargs == {"args": [], "kwargs": {"delivery_id": delivery.pk}}
    assert job.priority == FIRST_ATTEMPT_PRIORITY


def test_a_rolled_back_send_leaves_neither_delivery_nor_job(partner, uploader):
    order = make_order(partner)

    with pytest.raises(Boom), transaction.atomic():
        make_delivery(order, uploader)
        assert DBTaskResult.objects.count() == 1
        raise Boom

    assert not Delivery.objects.exists()
    assert not DBTaskResult.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_with_another_backend_the_job_is_queued_only_once_the_delivery_is_committed(partner, uploader, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    backend = task_backends["default"]
    delivery = make_delivery(make_order(partner), uploader, enqueue=False)

    with transaction.atomic():
        delivery_enqueue(delivery=delivery)
        assert backend.results == []

    [result] = backend.results
    assert result.kwargs == {"delivery_id": delivery.pk}

    with pytest.raises(Boom), transaction.atomic():
        delivery_enqueue(delivery=delivery)
        raise Boom
    assert len(backend.results) == 1
