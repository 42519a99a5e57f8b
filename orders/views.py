"""Staff pages: find an order, see what happened to it, upload and send its note.

Every view needs sign-in (LoginRequiredMiddleware) and a permission; without the
permission the answer is 403, not merely a hidden button. Paths carry opaque ids
only, and redirects go to ids: patient data never reaches a URL, and so never an
access log or a trace.
"""

import logging
import re
import unicodedata

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Prefetch
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from hcoint.admin import can_open_admin
from hcoint.events import log_event
from orders import note_content, notes
from orders.audit import audit_record, order_events, view_summaries
from orders.confirm import confirmer_configured
from orders.delivery import STAFF_ACTION_STATUSES, DeliveryError, delivery_abandon, delivery_retry_now
from orders.forms import NoteUploadForm, OrderFilterForm, ReasonForm
from orders.models import AuditEvent, ClinicalNote, Delivery, DeliveryAttempt, Order
from orders.pdf.preview import PreviewError
from orders.previews import note_page_png
from orders.reconcile import GROUPS, open_counts, reconciliation
from orders.retention import PDF_REMOVED
from orders.search import BoundedPaginator

ORDERS_PER_PAGE = 50

logger = logging.getLogger(__name__)


def _order(pk):
    return get_object_or_404(Order.objects.select_related("partner"), pk=pk)


def _note(pk):
    """A note without its bytes (they are only read by the PDF views)."""
    return get_object_or_404(ClinicalNote.objects.defer("content").select_related("order__partner"), pk=pk)


def _delivery(pk):
    return get_object_or_404(Delivery.objects.select_related("order"), pk=pk)


@require_GET
@permission_required("orders.view_order", raise_exception=True)
def order_list(request):
    form = OrderFilterForm(request.GET or None)
    orders = Order.objects.select_related("partner").order_by("-first_received_at", "-id")
    if form.is_bound:
        # An unknown value in one filter (a stale bookmark) drops that filter, not the others.
        form.is_valid()
        orders = form.filter(orders)
    page = BoundedPaginator(orders, ORDERS_PER_PAGE).get_page(request.GET.get("page"))
    # The filters, without the page number, for the pagination links.
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode(), "searching": bool(query)}
    if request.user.has_perm("orders.upload_note"):
        # What needs doing, per group, for those who can act on it (uploaders and admins);
        # the nav's number comes from the same counts (the context processor counts no more).
        counts = open_counts()
        context["reconcile_counts"] = [{"group": group, "count": counts.groups[group.key]} for group in GROUPS]
        context["reconcile_open"] = counts.attention
    return render(request, "orders/order_list.html", context)


@require_GET
@permission_required("orders.upload_note", raise_exception=True)
def reconcile(request):
    """Orders not yet Filed, grouped by why, oldest first, each with the next action."""
    counts = open_counts()
    return render(
        request,
        "orders/reconcile.html",
        {
            "groups": reconciliation(counts=counts.groups),
            "confirmation_configured": confirmer_configured(),
            "reconcile_open": counts.attention,  # the nav's number, from the same counts
        },
    )


@require_GET
@permission_required("orders.view_order", raise_exception=True)
def order_detail(request, pk):
    order = _order(pk)
    audit_record(request=request, action=AuditEvent.Action.VIEW_ORDER, obj=order, order=order)
    timeline = _timeline(order, can_open_messages=_can_open_messages(request.user))
    return render(
        request,
        "orders/order_detail.html",
        {
            "order": order,
            "timeline": timeline,
            "can_upload": request.user.has_perm("orders.upload_note"),
            "can_manage": request.user.has_perm("orders.manage_delivery"),
            # The statuses in which staff may retry or abandon a delivery.
            "staff_action_statuses": STAFF_ACTION_STATUSES,
            # Without Platform API credentials nobody asks Redox whether a note was filed.
            "confirmation_configured": confirmer_configured(),
            "unsent_notes": [
                entry["obj"]
                for entry in timeline
                if entry["kind"] == "note" and not entry["delivery"] and not entry["obj"].is_purged
            ],
            "retention": retention_days(),
        },
    )


def retention_days():
    """The retention periods the order page names beside what was removed."""
    return {
        "pdf": settings.RETENTION_PDF_DAYS,
        "payload": settings.RETENTION_PAYLOAD_DAYS,
        "patient": settings.RETENTION_PATIENT_DAYS,
    }


def _timeline(order, *, can_open_messages):
    """Everything that happened to `order`, oldest first, as dicts the template reads."""
    entries = []
    for message in order.messages.defer("body", "headers").order_by("received_at", "id"):
        entries.append(
            {
                "kind": "message",
                "at": message.received_at,
                "obj": message,
                "admin_url": _admin_message_url(message) if can_open_messages else "",
            }
        )
    notes_by_id = {}
    for note in order.notes.defer("content").select_related("uploaded_by"):
        entry = {"kind": "note", "at": note.uploaded_at, "obj": note, "delivery": None}
        notes_by_id[note.pk] = entry
        entries.append(entry)
    attempts = Prefetch("attempts", queryset=DeliveryAttempt.objects.order_by("started_at", "id"))
    for delivery in order.deliveries.select_related("created_by", "abandoned_by").prefetch_related(attempts):
        if delivery.note_id in notes_by_id:
            notes_by_id[delivery.note_id]["delivery"] = delivery
        entries.append({"kind": "delivery", "at": delivery.created_at, "obj": delivery})
        for attempt in delivery.attempts.all():
            entries.append({"kind": "attempt", "at": attempt.started_at, "obj": attempt, "delivery": delivery})
    if order.cancelled_at:
        entries.append({"kind": "cancelled", "at": order.cancelled_at, "obj": order})
    for event in order_events(order):
        entries.append({"kind": "audit", "at": event.created_at, "obj": event})
    # Views are one line per action, "Viewed PDF 7 times, last by …", placed at the latest one.
    for views in view_summaries(order):
        entries.append({"kind": "views", "at": views.last.created_at, "obj": views.last, "summary": views})
    # Stable sort: entries at the same instant keep the order they were gathered in.
    entries.sort(key=lambda entry: entry["at"])
    return entries


def _can_open_messages(user):
    # The raw message is an admin page: the link shows only to whom the admin lets in.
    return can_open_admin(user) and user.has_perm("orders.view_inboundmessage")


def _admin_message_url(message):
    return reverse("admin:orders_inboundmessage_change", args=[message.pk])


@require_http_methods(["GET", "POST"])
@permission_required("orders.upload_note", raise_exception=True)
def upload_note(request, pk):
    order = _order(pk)
    if request.method == "POST":
        form = NoteUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                note = notes.note_upload(
                    order=order,
                    file_name=form.cleaned_data["file"].name,
                    content=form.content,
                    page_count=form.page_count,
                    original_sha256=form.checked.original_sha256,
                    user=request.user,
                    request=request,
                )
            except notes.NoteRefused as refused:
                form.add_error(None, refused.message)
            else:
                return redirect("review_note", pk=note.pk)
            finally:
                form.checked.close()  # the rebuilt copy's temporary file
        else:
            notes.note_upload_rejected(order=order, user=request.user, request=request, reason=form.rejection_reason())
    else:
        form = NoteUploadForm()
    status = 400 if form.is_bound else 200
    return render(request, "orders/upload_note.html", {"order": order, "form": form}, status=status)


@require_GET
@permission_required("orders.upload_note", raise_exception=True)
def review_note(request, pk):
    note = _note(pk)
    return _render_review(request, note, resend_form=ReasonForm())


def _render_review(request, note, *, resend_form, status=200):
    delivery = Delivery.objects.filter(note=note).first()
    blocker = notes.note_send_blocker(note=note, delivery=delivery)
    shown_pages = min(note.page_count, settings.NOTE_PREVIEW_MAX_PAGES)
    return render(
        request,
        "orders/review_note.html",
        {
            "note": note,
            "order": note.order,
            "delivery": delivery,
            "blocker": blocker[0] if blocker else "",
            "can_send": blocker is None,
            "can_resend": blocker is not None and blocker[1] == "already_sent",
            "resend_form": resend_form,
            "page_numbers": range(1, shown_pages + 1),
            # A US letter page's size at the preview's bound: room kept while images load.
            "page_size": (round(settings.NOTE_PREVIEW_MAX_PX * 612 / 792), settings.NOTE_PREVIEW_MAX_PX),
            "pages_not_shown": note.page_count - shown_pages,
        },
        status=status,
    )


@require_POST
@permission_required("orders.upload_note", raise_exception=True)
def send_note(request, pk):
    return _send_note(request, _note(pk), "The note is queued for delivery to the partner.")


@require_POST
@permission_required("orders.upload_note", raise_exception=True)
def resend_note(request, pk):
    note = _note(pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _render_review(request, note, resend_form=form, status=400)
    return _send_note(
        request,
        note,
        "The corrected note is queued for delivery to the partner.",
        correction_reason=form.cleaned_data["reason"],
    )


def _send_note(request, note, success_message, correction_reason=None):
    """Send (or resend) and land on the timeline; a refusal goes back to the review page."""
    try:
        notes.note_send(note=note, user=request.user, request=request, correction_reason=correction_reason)
    except notes.NoteRefused as refused:
        messages.error(request, refused.message)
        return redirect("review_note", pk=note.pk)
    messages.success(request, success_message)
    return redirect("order_detail", pk=note.order_id)


@require_GET
@permission_required("orders.view_order", raise_exception=True)
def note_pdf(request, pk):
    """The PDF, opened in a tab of its own. No page frames it: the review page shows page
    images (note_page), so the browser never runs a PDF inside our pages."""
    return _pdf_response(request, pk, as_attachment=False, action=AuditEvent.Action.VIEW_PDF)


@require_GET
@permission_required("orders.view_order", raise_exception=True)
def note_page(request, pk, number):
    """Page `number` (1 is the first) of the note as a PNG, so checking a note needs no PDF
    plug-in. Audited as a view of the PDF: the picture shows what the PDF shows."""
    note = _note(pk)
    if not 1 <= number <= min(note.page_count, settings.NOTE_PREVIEW_MAX_PAGES):
        raise Http404("No such page.")
    if note.is_purged:  # the PDF and its page images went together (orders/retention.py)
        return HttpResponse(PDF_REMOVED, status=410, content_type="text/plain; charset=utf-8")
    try:
        png = note_page_png(note, number - 1)
    except PreviewError as failed:
        log_event(logger, "note.preview_failed", level=logging.WARNING, note_id=note.pk, reason=failed.reason)
        return HttpResponse(failed.message, status=422, content_type="text/plain; charset=utf-8")
    audit_record(request=request, action=AuditEvent.Action.VIEW_PDF, obj=note, order=note.order)
    response = HttpResponse(png, content_type="image/png")
    response["Content-Length"] = str(len(png))
    return response


@require_GET
@permission_required("orders.view_order", raise_exception=True)
def note_download(request, pk):
    return _pdf_response(request, pk, as_attachment=True, action=AuditEvent.Action.DOWNLOAD_PDF)


def _pdf_response(request, pk, *, as_attachment, action):
    note = get_object_or_404(ClinicalNote.objects.select_related("order").defer("content"), pk=pk)
    if note.is_purged:
        # Gone for good, on purpose: 410 with a page that says so, not an empty PDF or a 500.
        audit_record(request=request, action=action, obj=note, order=note.order, outcome=AuditEvent.Outcome.FAILURE)
        context = {"note": note, "order": note.order, "days": settings.RETENTION_PDF_DAYS}
        return render(request, "orders/note_purged.html", context, status=410)
    audit_record(request=request, action=action, obj=note, order=note.order)
    # Streamed a stored piece at a time (orders/note_content.py): a large note is never whole
    # in the web process.
    response = StreamingHttpResponse(note_content.pieces(note), content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(as_attachment, pdf_file_name(note))
    response["Content-Length"] = str(note.size)
    # Patient documents must not linger in browser or proxy caches.
    response["Cache-Control"] = "no-store, private"
    return response


def pdf_file_name(note):
    """A safe ASCII file name for the Content-Disposition header: letters, digits, dot, dash, underscore."""
    stem = re.sub(r"\.pdf$", "", note.file_name, flags=re.IGNORECASE)
    # Decompose accents first so "Résumé" becomes "Resume" rather than "Rsum".
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_stem).strip("._")[:100]
    return f"{stem or f'note-{note.pk}'}.pdf"


@require_POST
@permission_required("orders.manage_delivery", raise_exception=True)
def retry_delivery(request, pk):
    delivery = _delivery(pk)
    try:
        delivery_retry_now(delivery=delivery, user=request.user)
    except DeliveryError as refused:
        return _refuse_delivery_action(request, delivery, AuditEvent.Action.RETRY_DELIVERY, str(refused))
    audit_record(request=request, action=AuditEvent.Action.RETRY_DELIVERY, obj=delivery, order=delivery.order)
    messages.success(request, "The delivery will be tried again now.")
    return redirect("order_detail", pk=delivery.order_id)


@require_http_methods(["GET", "POST"])
@permission_required("orders.manage_delivery", raise_exception=True)
def abandon_delivery(request, pk):
    delivery = _delivery(pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            delivery_abandon(delivery=delivery, user=request.user, reason=form.cleaned_data["reason"])
        except DeliveryError as refused:
            return _refuse_delivery_action(request, delivery, AuditEvent.Action.ABANDON_DELIVERY, str(refused))
        audit_record(request=request, action=AuditEvent.Action.ABANDON_DELIVERY, obj=delivery, order=delivery.order)
        messages.success(request, "The delivery was abandoned. Another note can now be sent for this order.")
        return redirect("order_detail", pk=delivery.order_id)
    status = 400 if form.is_bound else 200
    return render(
        request,
        "orders/abandon_delivery.html",
        {
            "delivery": delivery,
            "order": delivery.order,
            "form": form,
            "can_abandon": delivery.status in STAFF_ACTION_STATUSES,
        },
        status=status,
    )


def _refuse_delivery_action(request, delivery, action, message):
    audit_record(request=request, action=action, obj=delivery, order=delivery.order, outcome=AuditEvent.Outcome.FAILURE)
    messages.error(request, message)
    return redirect("order_detail", pk=delivery.order_id)
