"""Sending a batch: every row a person confirmed becomes a note and a delivery exactly as a
single upload does; skipped rows are discarded; the rest wait. One billable result per order
holds, within a batch too."""

from unittest import mock

import pytest
from django.urls import reverse

from orders import note_content
from orders.models import AuditEvent, BatchFile, Delivery
from tests.factories import (
    SAMPLE_PDF,
    TINY_PNG,
    BatchFileFactory,
    DeliveryFactory,
    UploadBatchFactory,
    UserFactory,
    other_patient_order,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def enqueue():
    with mock.patch("orders.notes.delivery_enqueue", autospec=True) as enqueued:
        yield enqueued


@pytest.fixture
def batch(uploader):
    return UploadBatchFactory(created_by=uploader, file_count=3)


@pytest.fixture
def orders(partner):
    return [other_patient_order(number, partner=partner) for number in range(3)]


def send(client, batch, choices):
    return client.post(reverse("batch_send", args=[batch.pk]), {f"file_{row.pk}": value for row, value in choices})


def audit(action, outcome=AuditEvent.Outcome.SUCCESS):
    return list(AuditEvent.objects.filter(action=action, outcome=outcome))


def test_confirmed_rows_become_notes_and_deliveries_skipped_ones_are_discarded(
    client, uploader, batch, orders, enqueue
):
    first, second, third = orders
    sent = BatchFileFactory(batch=batch, proposed_order=first, file_name="first.pdf")
    skipped = BatchFileFactory(batch=batch, proposed_order=second)
    waiting = BatchFileFactory(batch=batch, proposed_order=third)
    client.force_login(uploader)
    response = send(client, batch, [(sent, first.pk), (skipped, "skip"), (waiting, "")])
    assert response.status_code == 302 and response["Location"] == reverse("batch_detail", args=[batch.pk])

    sent.refresh_from_db()
    note = first.notes.get()
    assert sent.decision == BatchFile.Decision.SENT and sent.note == note and sent.chosen_order == first
    assert note_content.read(note) == SAMPLE_PDF
    assert note.file_name == "first.pdf" and note.uploaded_by == uploader
    assert note.original_sha256 == sent.original_sha256 and note.page_count == 1
    delivery = Delivery.objects.get(order=first)
    assert delivery.note == note and delivery.status == Delivery.Status.PENDING and delivery.created_by == uploader
    first.refresh_from_db()
    assert first.state == first.State.SENDING
    enqueue.assert_called_once_with(delivery=delivery)
    # The bytes now live in the note, its first page image in the note's preview cache;
    # the batch row keeps neither.
    assert not bytes(sent.content) and not bytes(sent.preview_png)
    assert bytes(note.previews.get(page_index=0).png) == TINY_PNG
    # One audit record each, as a single upload and send make.
    assert [event.order_id for event in audit(AuditEvent.Action.UPLOAD_NOTE)] == [first.pk]
    assert [event.order_id for event in audit(AuditEvent.Action.SEND_NOTE)] == [first.pk]

    skipped.refresh_from_db()
    assert skipped.decision == BatchFile.Decision.SKIPPED and not bytes(skipped.content)
    waiting.refresh_from_db()
    assert waiting.decision == BatchFile.Decision.PENDING and bytes(waiting.content).startswith(b"%PDF-")
    assert not second.notes.exists() and not third.notes.exists()

    page = client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert "1 note queued for delivery." in page and "1 file skipped." in page
    assert f'href="{reverse("order_detail", args=[first.pk])}"' in page
    assert f'name="file_{waiting.pk}"' in page and f'name="file_{sent.pk}"' not in page


def test_a_person_can_change_the_proposed_order_to_another_candidate(client, uploader, batch, orders, enqueue):
    """Issue 13: the uploader confirms, changes or skips each row; a change sends to the order chosen."""
    proposed, chosen, _ = orders
    row = BatchFileFactory(
        batch=batch,
        proposed_order=proposed,
        proposal=[
            {"order": proposed.pk, "score": 98, "reasons": ["order id in the file name"]},
            {"order": chosen.pk, "score": 88, "reasons": ["MRN and date of birth on page 1"]},
        ],
    )
    client.force_login(uploader)
    page = client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert f'value="{proposed.pk}" id="id_file_{row.pk}_{proposed.pk}" checked' in page
    assert f'value="{chosen.pk}" id="id_file_{row.pk}_{chosen.pk}">' in page

    response = send(client, batch, [(row, chosen.pk)])
    assert response.status_code == 302

    row.refresh_from_db()
    note = chosen.notes.get()
    assert row.decision == BatchFile.Decision.SENT and row.chosen_order == chosen and row.note == note
    delivery = Delivery.objects.get()
    assert delivery.order == chosen and delivery.note == note
    enqueue.assert_called_once_with(delivery=delivery)
    assert not proposed.notes.exists()
    proposed.refresh_from_db()
    chosen.refresh_from_db()
    assert (proposed.state, chosen.state) == (proposed.State.AWAITING_NOTE, chosen.State.SENDING)
    assert [event.order_id for event in audit(AuditEvent.Action.SEND_NOTE)] == [chosen.pk]


def test_the_sent_bytes_are_the_gates_clean_copy(client, uploader, batch, orders):
    row = BatchFileFactory(batch=batch, proposed_order=orders[0], content=b"%PDF-1.7 the clean copy")
    client.force_login(uploader)
    send(client, batch, [(row, orders[0].pk)])
    assert note_content.read(orders[0].notes.get()) == b"%PDF-1.7 the clean copy"


def test_a_file_is_never_sent_to_an_order_with_a_note_in_flight(client, uploader, batch, orders):
    busy = orders[0]
    DeliveryFactory(order=busy, sending=True)
    row = BatchFileFactory(batch=batch, proposed_order=busy)
    client.force_login(uploader)
    send(client, batch, [(row, busy.pk)])
    row.refresh_from_db()
    assert row.decision == BatchFile.Decision.PENDING and row.chosen_order is None
    assert row.reason == "in_flight" and "already on its way" in row.problem
    assert busy.notes.count() == 1  # the delivery's own note; none from the batch
    assert Delivery.objects.filter(order=busy).count() == 1
    # Refused by the send, as a single send is: one failure record of the send, none of an upload.
    assert [event.order_id for event in audit(AuditEvent.Action.SEND_NOTE, AuditEvent.Outcome.FAILURE)] == [busy.pk]
    assert not audit(AuditEvent.Action.UPLOAD_NOTE, AuditEvent.Outcome.FAILURE)
    page = client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert "1 file not sent; each says why below." in page
    assert "already on its way to the partner" in page


def test_a_file_is_never_sent_to_an_order_whose_note_was_accepted(client, uploader, batch, orders):
    DeliveryFactory(order=orders[0], sent=True)
    row = BatchFileFactory(batch=batch, proposed_order=orders[0])
    client.force_login(uploader)
    send(client, batch, [(row, orders[0].pk)])
    row.refresh_from_db()
    assert row.decision == BatchFile.Decision.PENDING and row.reason == "already_sent"
    assert Delivery.objects.filter(order=orders[0]).count() == 1


def test_two_rows_choosing_the_same_order_the_second_is_refused(client, uploader, batch, orders):
    order = orders[0]
    first = BatchFileFactory(batch=batch, proposed_order=order, file_name="one.pdf")
    second = BatchFileFactory(batch=batch, proposed_order=order, file_name="two.pdf")
    client.force_login(uploader)
    page = client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert "another file of this batch is proposed for the same order" in page
    send(client, batch, [(first, order.pk), (second, order.pk)])
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.decision == BatchFile.Decision.SENT
    # note_send refuses it under the order's lock: the first file's delivery is in flight.
    assert second.decision == BatchFile.Decision.PENDING and second.reason == "in_flight"
    assert "already on its way to the partner" in second.problem
    assert [note.file_name for note in order.notes.all()] == ["one.pdf"]
    assert Delivery.objects.filter(order=order).count() == 1


def test_only_a_proposed_order_can_be_chosen(client, uploader, batch, orders):
    row = BatchFileFactory(batch=batch, proposed_order=orders[0])
    client.force_login(uploader)
    response = send(client, batch, [(row, orders[1].pk)])
    assert response.status_code == 400
    assert "Choose one of the orders proposed for this file" in response.content.decode()
    assert not orders[1].notes.exists() and not orders[0].notes.exists()


def test_submitting_with_nothing_chosen_sends_nothing(client, uploader, batch, orders):
    row = BatchFileFactory(batch=batch, proposed_order=orders[0])
    client.force_login(uploader)
    response = send(client, batch, [(row, "")])
    assert response.status_code == 400
    assert "Choose an order (or skip) for at least one file." in response.content.decode()
    row.refresh_from_db()
    assert row.decision == BatchFile.Decision.PENDING and not orders[0].notes.exists()


def test_a_row_already_sent_is_not_sent_again(client, uploader, batch, orders):
    row = BatchFileFactory(batch=batch, proposed_order=orders[0])
    client.force_login(uploader)
    send(client, batch, [(row, orders[0].pk)])
    # The same form posted again (a second tab, a double click): the row is no longer open.
    response = send(client, batch, [(row, orders[0].pk)])
    assert response.status_code == 400
    assert orders[0].notes.count() == 1 and Delivery.objects.filter(order=orders[0]).count() == 1


def test_a_cancelled_order_takes_no_note_from_a_batch(client, uploader, batch, orders):
    order = orders[0]
    order.cancel()
    order.save()
    row = BatchFileFactory(batch=batch, proposed_order=order)
    client.force_login(uploader)
    send(client, batch, [(row, order.pk)])
    row.refresh_from_db()
    assert row.reason == "order_cancelled" and not order.notes.exists()


def test_a_send_refused_after_the_note_was_stored_leaves_neither(client, uploader, batch, orders, monkeypatch):
    """A send that loses a race (the lock in note_send finds a delivery in flight) takes its note with it."""
    from orders import notes

    order = orders[0]
    row = BatchFileFactory(batch=batch, proposed_order=order)

    def refuse(**kwargs):
        raise notes.NoteRefused(notes.IN_FLIGHT_REFUSAL, "in_flight")

    monkeypatch.setattr("orders.batches.note_send", refuse)
    client.force_login(uploader)
    send(client, batch, [(row, order.pk)])
    row.refresh_from_db()
    assert row.decision == BatchFile.Decision.PENDING and row.reason == "in_flight"
    assert not order.notes.exists()
    assert not audit(AuditEvent.Action.UPLOAD_NOTE)
    assert not audit(AuditEvent.Action.UPLOAD_NOTE, AuditEvent.Outcome.FAILURE)
    assert [event.order_id for event in audit(AuditEvent.Action.SEND_NOTE, AuditEvent.Outcome.FAILURE)] == [order.pk]


def test_another_uploader_cannot_send_my_batch(client, batch, orders):
    row = BatchFileFactory(batch=batch, proposed_order=orders[0])
    client.force_login(UserFactory(uploader=True))
    assert send(client, batch, [(row, orders[0].pk)]).status_code == 404
    assert not orders[0].notes.exists()


def test_the_page_of_a_sent_batch_reads_no_note(client, uploader, batch, orders):
    """A sent row names its order from the row itself: a view never loads (and decrypts) a note's PDF."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    row = BatchFileFactory(batch=batch, proposed_order=orders[0])
    client.force_login(uploader)
    send(client, batch, [(row, orders[0].pk)])
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert f'href="{reverse("order_detail", args=[orders[0].pk])}"' in page
    assert not [query["sql"] for query in queries if "orders_clinicalnote" in query["sql"]]


def test_a_refused_send_keeps_one_failure_record_and_no_note(client, uploader, batch, orders, caplog):
    """The real note_send refuses (a delivery in flight) after the note was stored: the note and
    note_send's own failure record roll back with it, and exactly one failure record stays."""
    import logging

    busy = orders[0]
    DeliveryFactory(order=busy, sending=True)
    row = BatchFileFactory(batch=batch, proposed_order=busy)
    client.force_login(uploader)
    with caplog.at_level(logging.INFO):
        send(client, batch, [(row, busy.pk)])
    assert busy.notes.count() == 1  # the delivery's own note only
    failures = AuditEvent.objects.filter(outcome=AuditEvent.Outcome.FAILURE)
    assert [(event.action, event.object_type, event.order_id) for event in failures] == [
        (AuditEvent.Action.SEND_NOTE, "order", busy.pk)
    ]
    batch_logs = [record for record in caplog.records if record.name == "orders.batches"]
    refused = [record for record in batch_logs if record.getMessage() == "batch.send_refused"]
    assert len(refused) == 1 and (refused[0].batch_file_id, refused[0].reason) == (row.pk, "in_flight")
    assert not [record for record in batch_logs if hasattr(record, "note_id")]
    # Nor does the single path's code log a note that the rollback removed.
    assert not [record for record in caplog.records if record.name == "orders.notes"]


def test_a_skip_never_overwrites_a_row_another_window_sent(uploader, batch, orders):
    from orders.batches import batch_send

    row = BatchFileFactory(batch=batch, proposed_order=orders[0])
    batch_send(batch=batch, choices=[(row, orders[0])], user=uploader)
    # The other window still shows the row as waiting, and skips it.
    outcome = batch_send(batch=batch, choices=[(row, None)], user=uploader)
    assert (outcome.skipped, outcome.already_decided) == ([], [row])
    row.refresh_from_db()
    assert row.decision == BatchFile.Decision.SENT and row.note == orders[0].notes.get()


def test_a_row_decided_meanwhile_is_reported_as_such_not_audited_as_a_failure(uploader, batch, orders):
    from orders.batches import batch_send

    row = BatchFileFactory(batch=batch, proposed_order=orders[0])
    # The same row twice in one send: the second finds it sent under the row lock.
    outcome = batch_send(batch=batch, choices=[(row, orders[0]), (row, orders[0])], user=uploader)
    assert (outcome.sent, outcome.refused, outcome.already_decided) == ([row], [], [row])
    assert not AuditEvent.objects.filter(outcome=AuditEvent.Outcome.FAILURE).exists()
    assert orders[0].notes.count() == 1
