"""A note's preview asks for each page as an image, and each request is audited as "Viewed
PDF": the order's timeline shows those as one line per action ("Viewed PDF 6 times …, last
by … at …"), like the order's own views, instead of one row per page image."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.audit import view_summaries
from orders.models import AuditEvent
from tests.factories import ClinicalNoteFactory, OrderFactory
from tests.pdf_text import text_pdf

pytestmark = pytest.mark.django_db


@pytest.fixture
def note(partner, uploader):
    content = text_pdf(["Synthetic note, page one", "page two", "page three"])
    return ClinicalNoteFactory(order=OrderFactory(partner=partner), uploaded_by=uploader, content=content, page_count=3)


def test_page_image_views_are_one_timeline_line(client, viewer, uploader, note):
    order = note.order
    for user in (uploader, viewer):
        client.force_login(user)
        for number in (1, 2, 3):
            assert client.get(reverse("note_page", args=[note.pk, number]), REMOTE_ADDR="10.9.8.7").status_code == 200
    assert AuditEvent.objects.filter(order=order, action=AuditEvent.Action.VIEW_PDF).count() == 6
    # A view that failed stays a line of its own.
    AuditEvent.objects.create(
        actor=viewer,
        actor_username=viewer.username,
        action=AuditEvent.Action.VIEW_PDF,
        order=order,
        outcome=AuditEvent.Outcome.FAILURE,
    )

    response = client.get(reverse("order_detail", args=[order.pk]), REMOTE_ADDR="10.9.8.7")

    timeline = response.context["timeline"]
    lines = {entry["summary"].action: entry for entry in timeline if entry["kind"] == "views"}
    assert set(lines) == {AuditEvent.Action.VIEW_ORDER, AuditEvent.Action.VIEW_PDF}
    pdf = lines[AuditEvent.Action.VIEW_PDF]
    assert (pdf["summary"].count, pdf["summary"].people, pdf["obj"].actor_username) == (6, 2, viewer.username)
    assert pdf["at"] == pdf["obj"].created_at
    audit_lines = [entry["obj"] for entry in timeline if entry["kind"] == "audit"]
    assert [(event.action, event.outcome) for event in audit_lines] == [
        (AuditEvent.Action.VIEW_PDF, AuditEvent.Outcome.FAILURE)
    ]
    html = response.content.decode()
    assert "Viewed PDF 6 times by 2 people," in html
    assert f"last by {viewer.username} from 10.9.8.7" in html
    assert "Viewed order 1 time," in html
    assert html.count("Viewed PDF") == 2  # the summary, and the failed view's own line


def test_the_summaries_take_two_queries_whatever_the_views(viewer, note):
    for action in (AuditEvent.Action.VIEW_ORDER, AuditEvent.Action.VIEW_PDF) * 4:
        AuditEvent.objects.create(actor=viewer, actor_username=viewer.username, action=action, order=note.order)
    with CaptureQueriesContext(connection) as captured:
        summaries = view_summaries(note.order)
    assert [(summary.action, summary.count, summary.people) for summary in summaries] == [
        (AuditEvent.Action.VIEW_ORDER, 4, 1),
        (AuditEvent.Action.VIEW_PDF, 4, 1),
    ]
    # DISTINCT ON where the database has it; one query per action on SQLite (`make run`).
    assert len(captured) == (2 if connection.features.can_distinct_on_fields else 3)
    assert view_summaries(OrderFactory(partner=note.order.partner)) == []


def test_without_distinct_on_the_summaries_name_the_same_latest_views(viewer, uploader, note, monkeypatch):
    views = [(viewer, "view_order"), (uploader, "view_pdf"), (uploader, "view_order"), (viewer, "view_pdf")]
    for user, action in views:
        AuditEvent.objects.create(actor=user, actor_username=user.username, action=action, order=note.order)
    with_distinct_on = view_summaries(note.order)
    monkeypatch.setattr(connection.features, "can_distinct_on_fields", False)
    without = view_summaries(note.order)
    assert [(s.action, s.count, s.people, s.last.pk) for s in without] == [
        (s.action, s.count, s.people, s.last.pk) for s in with_distinct_on
    ]
    assert [s.last.actor_username for s in without] == [uploader.username, viewer.username]
