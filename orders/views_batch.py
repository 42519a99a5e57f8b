"""The bulk upload pages: drop many PDFs, see each beside the order it seems to belong to,
confirm, change or skip each, and send the confirmed ones in one go (orders/batches.py).

A batch is its uploader's: another user's batch answers 404, like a batch past its
expiry. Paths carry opaque ids only.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import TooManyFilesSent
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from orders import batches
from orders.forms_batch import BatchSendForm, BatchUploadForm, rows_for_page
from orders.models import BatchFile, UploadBatch
from orders.pdf.preview import PreviewError

# Multipart framing and the other fields, on top of the files themselves.
REQUEST_OVERHEAD_BYTES = 1024 * 1024


def _batch(request, pk):
    return get_object_or_404(UploadBatch, pk=pk, created_by=request.user, expires_at__gt=timezone.now())


# csrf_exempt only so that the upload handlers can be set before the body is read; the
# CSRF check itself runs in _upload, as Django's documentation shows:
# https://docs.djangoproject.com/en/5.2/topics/http/file-uploads/#modifying-upload-handlers-on-the-fly
@csrf_exempt
@require_http_methods(["GET", "POST"])
@permission_required("orders.upload_note", raise_exception=True)
def batch_list(request):
    """The bulk upload page: the drop zone, and the user's batches still open."""
    if request.method == "POST":
        return _receive(request)
    return _render_list(request, BatchUploadForm())


def _receive(request):
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.UPLOAD_BATCH_MAX_BYTES + REQUEST_OVERHEAD_BYTES:
        return _render_list(
            request,
            BatchUploadForm(),
            error=f"That upload is {filesizeformat(declared)}; upload at most "
            f"{filesizeformat(settings.UPLOAD_BATCH_MAX_BYTES)} at once.",
            status=413,
        )
    # Every file to a temporary file, however small: memory holds one file at a time, when checked.
    request.upload_handlers = [TemporaryFileUploadHandler(request)]
    try:
        request.POST  # noqa: B018 - parse the body now, to answer too many files in words
    except TooManyFilesSent:
        return _render_list(
            request,
            BatchUploadForm(),
            error=f"Upload at most {settings.UPLOAD_BATCH_MAX_FILES} files at once.",
            status=400,
        )
    return _upload(request)


@csrf_protect
def _upload(request):
    form = BatchUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_list(request, form, status=400)
    batch, refused = batches.batch_create(user=request.user, uploads=form.cleaned_data["pdfs"])
    summary = f"{_count(range(batch.file_count), 'file')} uploaded"
    messages.info(request, f"{summary}; {refused} refused by the PDF check." if refused else f"{summary}.")
    return redirect("batch_detail", pk=batch.pk)


def _render_list(request, form, *, error="", status=200):
    return render(
        request,
        "orders/batch_list.html",
        {
            "form": form,
            "error": error,
            "batches": batches.batches_open_for(request.user),
            "expiry_days": settings.UPLOAD_BATCH_EXPIRY_DAYS,
        },
        status=status,
    )


@require_GET
@permission_required("orders.upload_note", raise_exception=True)
def batch_detail(request, pk):
    batch = _batch(request, pk)
    rows = rows_for_page(batch)
    return _render_detail(request, batch, rows, BatchSendForm(rows))


def _render_detail(request, batch, rows, form, status=200):
    done = [row for row in rows if not row.is_open]
    return render(
        request,
        "orders/batch_detail.html",
        {
            "batch": batch,
            "form": form,
            "entries": list(form.entries()),
            "done": done,
            "missing": max(batch.file_count - len(rows), 0),
            "shared": _shared_proposals(form.rows),
        },
        status=status,
    )


def _shared_proposals(rows):
    """Order ids pre-selected for more than one waiting file: only one of them can go."""
    seen, shared = set(), set()
    for row in rows:
        if row.proposed_order_id in seen:
            shared.add(row.proposed_order_id)
        seen.add(row.proposed_order_id)
    shared.discard(None)
    return shared


@require_POST
@permission_required("orders.upload_note", raise_exception=True)
def batch_send(request, pk):
    batch = _batch(request, pk)
    rows = rows_for_page(batch)
    form = BatchSendForm(rows, request.POST)
    if not form.is_valid():
        return _render_detail(request, batch, rows, form, status=400)
    outcome = batches.batch_send(batch=batch, choices=form.choices, user=request.user, request=request)
    if outcome.sent:
        messages.success(request, f"{_count(outcome.sent, 'note')} queued for delivery.")
    if outcome.skipped:
        messages.info(request, f"{_count(outcome.skipped, 'file')} skipped.")
    if outcome.refused:
        messages.error(request, f"{_count(outcome.refused, 'file')} not sent; each says why below.")
    if outcome.already_decided:
        messages.info(request, f"{_count(outcome.already_decided, 'file')} already dealt with, in another window.")
    return redirect("batch_detail", pk=batch.pk)


def _count(items, noun):
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


@require_GET
@permission_required("orders.upload_note", raise_exception=True)
def batch_file_preview(request, pk):
    """The first page of a file in one of the user's batches, as an image (rendered once, then kept)."""
    row = get_object_or_404(
        BatchFile.objects.defer("content").select_related("batch"),
        pk=pk,
        batch__created_by=request.user,
        batch__expires_at__gt=timezone.now(),
    )
    try:
        image = batches.batch_file_png(row)
    except PreviewError:
        raise Http404("No preview") from None
    response = HttpResponse(image, content_type="image/png")
    response["Content-Length"] = str(len(image))
    return response  # Cache-Control: no-store, private from hcoint.middleware.NoStoreMiddleware
