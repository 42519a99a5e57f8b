"""Each delivery attempt and each Redox call gets a custom span with opaque tags only."""

import pytest

from orders.delivery import delivery_send_once
from tests.delivery_fakes import T0, FakeRedox, accepted, permanent, transient
from tests.factories import DeliveryFactory, OrderFactory

pytestmark = pytest.mark.django_db
PHI = ("Samplepatient", "Testy", "MRN0048213", "1948-02-29")


def all_tag_values(tracer):
    return " ".join(" ".join(map(str, span.get_tags().values())) for span in tracer.spans)


def test_a_successful_attempt_is_traced_with_partner_model_delivery_outcome_and_status(
    partner, uploader, recording_tracer
):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    with FakeRedox(accepted()).patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0)

    (attempt,) = recording_tracer.named("delivery.attempt")
    assert attempt.get_tag("delivery_id") == str(delivery.pk)
    assert attempt.get_tag("outcome") == "sent"
    assert attempt.get_tag("http.status_code") == "200"
    (send,) = recording_tracer.named("redox.send")
    assert send.resource == "results"
    assert send.get_tag("partner_id") == str(partner.pk)
    assert send.get_tag("data_model") == "results"
    assert send.get_tag("delivery_id") == str(delivery.pk)
    assert send.get_tag("outcome") == "accepted"
    assert send.get_tag("http.status_code") == "200"
    assert all(span.finished for span in recording_tracer.spans)


def test_failed_redox_calls_are_traced_without_patient_data(partner, uploader, recording_tracer):
    delivery = DeliveryFactory(
        order=OrderFactory(partner=partner, sending=True), created_by=uploader, created_at=T0, enqueue=True
    )
    rejection = permanent((f"Patient {PHI[0]} {PHI[2]} born {PHI[3]} not found",))
    with FakeRedox(transient(503)).patch():
        delivery_send_once(delivery_id=delivery.pk, now=T0)
    delivery.refresh_from_db()
    with FakeRedox(rejection).patch():
        delivery_send_once(delivery_id=delivery.pk, now=delivery.next_attempt_at)

    first, second = recording_tracer.named("redox.send")
    assert (first.get_tag("outcome"), first.get_tag("http.status_code"), first.error) == ("retryable", "503", 1)
    assert (second.get_tag("outcome"), second.get_tag("http.status_code"), second.error) == ("permanent", "400", 1)
    attempts = recording_tracer.named("delivery.attempt")
    assert [span.get_tag("outcome") for span in attempts] == ["retry_scheduled", "failed"]
    text = all_tag_values(recording_tracer)
    for value in PHI:
        assert value not in text
