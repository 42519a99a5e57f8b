"""Bulk upload: many PDFs at once, each through the upload gate, matched to the order it
belongs to, and sent only for the rows a person confirmed.

    batch, refused = batch_create(user=user, uploads=files)  # the gate per file, then matching in groups
    png = batch_file_png(row)                                # the first page, rendered once when first shown
    outcome = batch_send(batch=batch, choices=[(row, order or None), ...], user=user, request=request)
    batch_purge_expired()                                    # the worker's periodic job

A file the gate refuses stays in the batch as refused, with the gate's plain-words
reason, so nothing dropped is lost silently. The text read from a file (patient data) is
used for matching and dropped: a row keeps only the proposal (candidate order ids, scores
and reasons). Each confirmed row becomes a note and a delivery through `note_upload` and
`note_send` (orders/notes.py), so the single-upload rules hold, one billable result per
order included (note_send enforces it under the order's lock), with one audit record each.
Two rows of one batch chosen for the same order: the second finds the first's delivery in
flight and is refused. Unsent files are deleted UPLOAD_BATCH_EXPIRY_DAYS after the
upload, by the worker (orders/worker.py).
"""

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hcoint.events import log_event
from orders.audit import audit_record
from orders.matching import propose_all
from orders.models import AuditEvent, BatchFile, NotePreview, Order, UploadBatch
from orders.notes import NoteRefused, clean_file_name, note_send, note_upload, order_send_blocker
from orders.pdf import PdfRejected, pdf_check_upload
from orders.pdf.preview import PreviewError, first_pages_texts, render_page, text_groups

logger = logging.getLogger(__name__)


def batch_create(*, user, uploads, now=None):
    """A stored batch of `uploads` (Django UploadedFiles), each file checked and matched, and
    how many files the gate refused: (batch, refused).

    First each file through the gate, one at a time (the upload handler put each in a
    temporary file), its row saved at once: an upload cut short keeps what was done. Then
    the accepted files are read and matched in groups (one child process reads a group's
    text, one pair of queries matches it: docs/performance.md). Previews are rendered when
    first shown (`batch_file_png`), so the upload answers sooner.
    """
    now = now or timezone.now()
    batch = UploadBatch.objects.create(
        created_by=user,
        created_at=now,
        expires_at=now + timedelta(days=settings.UPLOAD_BATCH_EXPIRY_DAYS),
        file_count=len(uploads),
    )
    accepted = []  # (row, bytes of its copy)
    for position, upload in enumerate(uploads):
        row, stored = _check_file(batch, position, upload)
        if row.decision != BatchFile.Decision.REFUSED:
            accepted.append((row, stored))
    # In groups of files whose copies together fit one text-reading child.
    preselected = sum(_match([row for row, _ in group]) for group in text_groups(accepted, lambda pair: pair[1]))
    refused = len(uploads) - len(accepted)
    log_event(
        logger,
        "batch.created",
        batch_id=batch.pk,
        files=len(uploads),
        refused=refused,
        preselected=preselected,
    )
    return batch, refused


def _check_file(batch, position, upload):
    """The file's row, saved: the gate's clean copy, or refused with the gate's reason; and
    the copy's size. The row returned holds no bytes: the next file must not find this one's
    still in memory."""
    row = BatchFile(batch=batch, position=position, file_name=clean_file_name(upload.name), size=upload.size or 0)
    try:
        checked = pdf_check_upload(upload)
    except PdfRejected as rejected:
        row.decision, row.problem, row.reason = BatchFile.Decision.REFUSED, rejected.message, rejected.reason
        row.save()
        log_event(logger, "batch.file_refused", batch_id=batch.pk, batch_file_id=row.pk, reason=rejected.reason)
        return row, 0
    with contextlib.closing(checked):
        content = checked.content
    row.content = content
    row.original_sha256 = checked.original_sha256
    row.page_count = checked.page_count
    row.save()
    row.content = b""
    return row, len(content)


def _match(rows):
    """Read the first pages of `rows`' copies and store what matching proposes; the text is
    dropped here. Returns how many were pre-selected."""
    contents = dict(BatchFile.objects.filter(pk__in=[row.pk for row in rows]).values_list("pk", "content"))
    texts = first_pages_texts([bytes(contents.pop(row.pk)) for row in rows])
    # A file whose text cannot be read is matched by its name alone.
    named = [(row.file_name, text if isinstance(text, str) else "") for row, text in zip(rows, texts, strict=True)]
    del texts
    preselected = 0
    for row, proposal in zip(rows, propose_all(named), strict=True):
        row.proposal = [
            {"order": candidate.order.pk, "score": candidate.score, "reasons": list(candidate.reasons)}
            for candidate in proposal.candidates
        ]
        row.proposed_order = proposal.preselected
        preselected += proposal.preselected is not None
    BatchFile.objects.bulk_update(rows, ["proposal", "proposed_order"])
    return preselected


def batch_file_png(row):
    """The first page of `row`'s file as PNG, rendered on first request and kept with the row.
    Raises PreviewError (and remembers why, for the page) when it cannot be rendered."""
    if row.preview_png:
        return bytes(row.preview_png)
    content = BatchFile.objects.values_list("content", flat=True).get(pk=row.pk)
    try:
        png = render_page(bytes(content), 0)
    except PreviewError as failed:
        BatchFile.objects.filter(pk=row.pk).update(preview_problem=failed.message[:300])
        log_event(logger, "batch.preview_failed", batch_file_id=row.pk, reason=failed.reason)
        raise
    BatchFile.objects.filter(pk=row.pk).update(preview_png=png)
    return png


@dataclass
class SendOutcome:
    """What one send of a batch did: rows sent, skipped, refused (each with its message), and
    rows already decided elsewhere (another tab sent or skipped them first), left as they are."""

    sent: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    refused: list = field(default_factory=list)
    already_decided: list = field(default_factory=list)


class AlreadyDecided(Exception):
    """The row was sent or skipped in another window since this page was shown."""


def batch_send(*, batch, choices, user, request=None):
    """Act on a person's decisions: `choices` is [(row, order)] for rows they confirmed, order
    None for a skip. Rows left out stay as they are. Returns a SendOutcome.

    The decisions are recorded first (confirmed, with the chosen order), then each
    confirmed row is sent on its own: a refusal sends it back to pending with the reason,
    and the rows after it still go.
    """
    now = timezone.now()
    outcome = SendOutcome()
    confirmed = []
    for row, order in choices:
        still_open = _open_rows(batch).filter(pk=row.pk)
        if order is None:
            # One conditional UPDATE: a row another tab has just sent keeps its note.
            changed = still_open.update(decision=BatchFile.Decision.SKIPPED, decided_at=now, **DISCARDED)
        else:
            changed = still_open.update(
                decision=BatchFile.Decision.CONFIRMED, chosen_order=order, decided_at=now, problem="", reason=""
            )
        if not changed:
            outcome.already_decided.append(row)
        elif order is None:
            outcome.skipped.append(row)
        else:
            confirmed.append((row, order))
    for row, order in confirmed:
        try:
            _send_row(row, order, user=user, request=request, now=now)
        except AlreadyDecided:
            outcome.already_decided.append(row)
        except NoteRefused as refused:
            outcome.refused.append((row, refused.message))
        else:
            outcome.sent.append(row)
    log_event(
        logger,
        "batch.sent",
        batch_id=batch.pk,
        sent=len(outcome.sent),
        skipped=len(outcome.skipped),
        refused=len(outcome.refused),
        already_decided=len(outcome.already_decided),
    )
    return outcome


# What a skipped row lets go of: its bytes and any refusal.
DISCARDED = {"content": b"", "preview_png": b"", "problem": "", "reason": ""}


def _open_rows(batch):
    return BatchFile.objects.filter(batch=batch, decision__in=BatchFile.OPEN_DECISIONS)


def _send_row(row, order, *, user, request, now):
    """The row's file as a note for `order`, and its delivery: both or neither.

    The rules (a cancelled order, a note in flight or accepted: one billable result per
    order) are asked first, under the order's lock, held until the commit: a refused row
    stores, audits and logs nothing but `_refuse`'s one failure. note_upload and note_send
    apply the same rules again under the same lock, as the backstop; should one of them
    refuse, the rollback takes the note and their failure record with it.
    """
    action = AuditEvent.Action.UPLOAD_NOTE
    try:
        with transaction.atomic():
            # The row lock: a second tab sending the same batch finds it sent and leaves it.
            locked = BatchFile.objects.select_for_update().get(pk=row.pk)
            if locked.decision != BatchFile.Decision.CONFIRMED:
                # Not a refusal: nothing was attempted, so nothing is audited.
                raise AlreadyDecided
            if blocker := order_send_blocker(order=Order.objects.select_for_update().get(pk=order.pk)):
                message, reason = blocker
                if reason != "order_cancelled":  # the single path refuses a cancelled order at upload
                    action = AuditEvent.Action.SEND_NOTE
                raise NoteRefused(message, reason)
            note = note_upload(
                order=order,
                file_name=locked.file_name,
                content=locked.content,
                page_count=locked.page_count,
                original_sha256=locked.original_sha256,
                user=user,
                request=request,
            )
            action = AuditEvent.Action.SEND_NOTE
            note_send(note=note, user=user, request=request)
            if locked.preview_png:
                # The same copy, rendered the same way: the note's first page need not be rendered again.
                NotePreview.objects.bulk_create(
                    [NotePreview(note=note, page_index=0, png=bytes(locked.preview_png))], ignore_conflicts=True
                )
            locked.mark_sent(note, now)
    except NoteRefused as refused:
        _refuse(row, order, refused, action, user=user, request=request)
        raise
    log_event(logger, "batch.file_sent", batch_id=row.batch_id, batch_file_id=row.pk, note_id=note.pk)


def _refuse(row, order, refused, action, *, user, request):
    """Back to pending, saying why; the refused attempt is audited against the order as the
    single path audits it (`action`: the upload or the send that refused). The note, if one
    was stored, is gone with the rollback, so neither the record nor the log names it."""
    BatchFile.objects.filter(pk=row.pk, decision=BatchFile.Decision.CONFIRMED).update(
        decision=BatchFile.Decision.PENDING, chosen_order=None, problem=refused.message, reason=refused.reason
    )
    audit_record(request=request, user=user, action=action, obj=order, order=order, outcome=AuditEvent.Outcome.FAILURE)
    log_event(
        logger,
        "batch.send_refused",
        batch_id=row.batch_id,
        batch_file_id=row.pk,
        order_id=order.pk,
        reason=refused.reason,
    )


def batches_open_for(user, now=None):
    """The user's batches not yet expired, newest first, with how many files still wait."""
    from django.db.models import Count, Q

    now = now or timezone.now()
    waiting = Q(files__decision__in=BatchFile.OPEN_DECISIONS)
    return (
        UploadBatch.objects.filter(created_by=user, expires_at__gt=now)
        .annotate(waiting=Count("files", filter=waiting), stored=Count("files"))
        .order_by("-created_at", "-id")
    )


def candidate_orders(rows):
    """{order id: Order} for every order proposed to any of `rows` (a chosen order is one of
    them), in one query."""
    ids = {candidate["order"] for row in rows for candidate in row.proposal}
    return Order.objects.select_related("partner").in_bulk(ids)


def batch_purge_expired(now=None):
    """Delete every batch past its expiry, with its files and their bytes. Returns (batches, unsent files)."""
    now = now or timezone.now()
    expired = UploadBatch.objects.filter(expires_at__lte=now)
    unsent = BatchFile.objects.filter(batch__in=expired).exclude(decision=BatchFile.Decision.SENT).count()
    # The batches' delete takes their files with it in one statement (nothing refers to a
    # file, so Django's cascade reads no row's bytes).
    _, deleted = expired.delete()
    return deleted.get(UploadBatch._meta.label, 0), unsent


def batch_purge():
    """The worker's periodic job (orders/worker.py logs a failure as `batch.purge_failed`)."""
    batches, unsent = batch_purge_expired()
    log_event(logger, "batch.purged", batches=batches, unsent_files=unsent)
