"""The bulk upload's two forms: the files dropped at once, and the decisions taken on them.

Each file's PDF checks are not form errors: a refused file is kept in the batch with its
reason (orders/batches.py), so one bad file never sends the other forty-nine back.
"""

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from orders.batches import candidate_orders
from orders.models import BatchFile

SKIP = "skip"


class MultipleFileInput(forms.ClearableFileInput):
    # https://docs.djangoproject.com/en/5.2/topics/http/file-uploads/#uploading-multiple-files
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Every file of the field, as a list; emptiness and type are the gate's to judge, per file."""

    widget = MultipleFileInput

    def clean(self, data, initial=None):
        files = [upload for upload in (data if isinstance(data, list | tuple) else [data]) if upload]
        if not files and self.required:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return files


class BatchUploadForm(forms.Form):
    """Many PDFs in one request; cleaned_data["pdfs"] is the list of uploads."""

    pdfs = MultipleFileField(
        label="Clinical notes (PDFs)",
        widget=MultipleFileInput(attrs={"accept": "application/pdf,.pdf", "multiple": True}),
        error_messages={"required": "Choose or drop the PDFs to upload."},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pdfs"].help_text = (
            f"Up to {settings.UPLOAD_BATCH_MAX_FILES} PDFs and {filesizeformat(settings.UPLOAD_BATCH_MAX_BYTES)} "
            f"at once, each up to {filesizeformat(settings.NOTE_MAX_BYTES)}. Drop them here or choose them."
        )

    def clean_pdfs(self):
        # No count check here: DATA_UPLOAD_MAX_NUMBER_FILES is UPLOAD_BATCH_MAX_FILES, so Django
        # refuses more files while parsing the request (views_batch._receive answers it in words).
        files = self.cleaned_data["pdfs"]
        total = sum(upload.size or 0 for upload in files)
        if total > settings.UPLOAD_BATCH_MAX_BYTES:
            raise forms.ValidationError(
                f"The files come to {filesizeformat(total)}; upload at most "
                f"{filesizeformat(settings.UPLOAD_BATCH_MAX_BYTES)} at once.",
                code="too_large",
            )
        return files


class BatchSendForm(forms.Form):
    """One choice per file still waiting: one of its candidate orders, skip, or nothing yet.

    Only the orders proposed for a file may be chosen for it. Only `Proposal.preselected`
    (or an order chosen before, whose send did not happen) starts selected; a row goes
    only when the person submits it with an order chosen. After is_valid(), `choices` is
    [(row, order or None for a skip)] for the rows decided.
    """

    def __init__(self, rows, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = [row for row in rows if row.is_open]
        self.orders = candidate_orders(self.rows)
        self.choices = []
        for row in self.rows:
            # An order chosen before is one of these: only a proposed order can be chosen.
            allowed = [str(candidate["order"]) for candidate in row.proposal if candidate["order"] in self.orders]
            initial = row.chosen_order_id or row.proposed_order_id
            self.fields[self.field_name(row)] = forms.ChoiceField(
                label=row.file_name,
                required=False,
                choices=[("", "Decide later"), *((value, value) for value in allowed), (SKIP, "Skip this file")],
                initial=str(initial) if initial else "",
                widget=forms.RadioSelect,
                error_messages={"invalid_choice": "Choose one of the orders proposed for this file, or skip it."},
            )

    @staticmethod
    def field_name(row):
        return f"file_{row.pk}"

    def clean(self):
        cleaned = super().clean()
        self.choices = []
        for row in self.rows:
            value = cleaned.get(self.field_name(row))
            if value == SKIP:
                self.choices.append((row, None))
            elif value:
                self.choices.append((row, self.orders[int(value)]))
        if not self.errors and not self.choices:
            raise forms.ValidationError("Choose an order (or skip) for at least one file.", code="nothing_chosen")
        return cleaned

    def entries(self):
        """Per waiting row, what the page shows: the row, its field, and its candidates with their orders."""
        for row in self.rows:
            bound = self[self.field_name(row)]
            candidates = [
                {**candidate, "order": self.orders[candidate["order"]], "value": str(candidate["order"])}
                for candidate in row.proposal
                if candidate["order"] in self.orders
            ]
            yield {"row": row, "field": bound, "value": str(bound.value() or ""), "candidates": candidates}


def rows_for_page(batch):
    """The batch's files in upload order, without their bytes (the preview has its own URL).

    Not the notes: a sent row names its order by chosen_order_id (mark_sent sets it), and
    loading a note would read and decrypt its PDF on every view of the page."""
    return list(BatchFile.objects.filter(batch=batch).defer("content", "preview_png"))
