"""One delivery as a message: built from the stored order, partner and note, and sent to Redox.

Split from orders/delivery.py, which decides when to send and what the outcome means;
this module only turns rows into a Redox message and makes the HTTP calls (through
redox/client.py). It reads the database but never writes it.
"""

from django.conf import settings

from hcoint.tracing import span
from orders import note_content
from orders.models import ClinicalNote, Delivery, Order
from redox import client as redox_client
from redox import messages
from redox.errors import RedoxError


def delivery_ref(delivery):
    """The stable identifier of a delivery that travels in every message sent for it."""
    return f"hcoint-delivery-{delivery.pk}"


def send_delivery(delivery):
    """Build the message from the stored order, partner and note, and send it."""
    order = Order.objects.select_related("partner").get(pk=delivery.order_id)
    # The claim loads the note (orders/delivery.py); its PDF is read here, a piece at a time.
    if Delivery.note.is_cached(delivery):
        note = delivery.note
    else:
        note = ClinicalNote.objects.defer("content").get(pk=delivery.note_id)
    client = redox_client.get_client()
    # Inline base64 up to REDOX_INLINE_MAX_BYTES, else uploaded to the blob store first and
    # referenced by URI (Redox advises against embedding files over ~200 KB).
    ids = {"partner_id": order.partner_id, "delivery_id": delivery.pk, "data_model": order.partner.outbound_model}
    with span("redox.prepare_document", **ids):
        document = redox_client.prepare_document(note_content.file_source(note), note.file_name, client=client)
    message = messages.build_message(
        _outbound_order(delivery, order, note),
        document,
        data_model=order.partner.outbound_model,
        source_id=settings.REDOX_SOURCE_ID,
    )
    with span("redox.send", resource=order.partner.outbound_model, **ids) as traced:
        try:
            result = client.send(message)
        except RedoxError as exc:
            traced.set_tag("http.status_code", exc.status)
            traced.set_tag("outcome", "retryable" if exc.retryable else "permanent")
            raise
        traced.set_tag("http.status_code", result.status)
        traced.set_tag("outcome", "accepted")
    return result


def _outbound_order(delivery, order, note):
    return messages.OutboundOrder(
        ehr_order_id=order.ehr_order_id,
        patient_identifiers=order.patient_identifiers,
        patient_demographics=order.patient_demographics,
        visit_number=order.visit_number,
        procedure={
            "Code": order.procedure_code,
            "Codeset": order.procedure_codeset,
            "Description": order.procedure_description,
        },
        provider=order.provider,
        is_test=order.is_test,
        destination_id=order.partner.destination_id,
        destination_name=order.partner.destination_name,
        delivery_ref=delivery_ref(delivery),
        corrected=delivery.is_correction,
        completed_at=note.uploaded_at,
    )
