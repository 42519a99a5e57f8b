"""Staff forms. Each one validates its own input and says in plain words what is wrong."""

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from orders.models import Order, Partner
from orders.pdf import PdfRejected, pdf_check_upload
from orders.search import search_orders


class OrderFilterForm(forms.Form):
    """The order list's search box and filters, read from the query string."""

    KIND_CHOICES = [("", "Test and production"), ("test", "Test only"), ("production", "Production only")]

    q = forms.CharField(label="Search", required=False, max_length=200)
    state = forms.ChoiceField(label="State", required=False, choices=[("", "Any state"), *Order.State.choices])
    partner = forms.ModelChoiceField(
        label="Partner", required=False, queryset=Partner.objects.all(), empty_label="Any partner"
    )
    kind = forms.ChoiceField(label="Test or production", required=False, choices=KIND_CHOICES)

    def filter(self, orders):
        """Narrow `orders` by whatever was asked for; call after is_valid()."""
        data = self.cleaned_data
        if data.get("state"):
            orders = orders.filter(state=data["state"])
        if data.get("partner"):
            orders = orders.filter(partner=data["partner"])
        if data.get("kind") == "test":
            orders = orders.filter(is_test=True)
        elif data.get("kind") == "production":
            orders = orders.filter(is_test=False)
        orders = search_orders(orders, data.get("q"))
        return orders


class NoteUploadForm(forms.Form):
    """One PDF. After is_valid(): `checked` is the CheckedPdf (the rebuilt copy, its page
    count and the upload's SHA-256); `content` (the copy as a file, from its first byte) and
    `page_count` are the copy's."""

    file = forms.FileField(
        label="Clinical note (PDF)",
        widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,.pdf"}),
        error_messages={
            "required": "Choose the PDF to upload.",
            "empty": "The file is empty.",
            "invalid": "No file was received; choose the PDF again.",
        },
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = f"One PDF, up to {filesizeformat(settings.NOTE_MAX_BYTES)}."
        self.checked = None

    def rejection_reason(self):
        """A short code for why the file was refused, for the log line (never the file's content)."""
        errors = self.errors.as_data().get("file") or [None]
        return getattr(errors[0], "code", None) or "invalid"

    def clean_file(self):
        upload = self.cleaned_data["file"]
        # Django accepts up to UPLOAD_BATCH_MAX_FILES files per request (for the bulk upload);
        # this form would quietly keep only the last of them.
        if len(self.files.getlist(self.add_prefix("file"))) > 1:
            raise forms.ValidationError(
                "Choose one PDF. To upload the notes of many orders at once, use Bulk upload.", code="many_files"
            )
        try:
            self.checked = pdf_check_upload(upload)
        except PdfRejected as rejected:
            raise forms.ValidationError(rejected.message, code=rejected.reason) from None
        return upload

    @property
    def content(self):
        return self.checked.open() if self.checked else None

    @property
    def page_count(self):
        return self.checked.page_count if self.checked else None


class ReasonForm(forms.Form):
    """A required reason: for a corrected resend, or for abandoning a delivery."""

    reason = forms.CharField(
        label="Reason",
        max_length=2000,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Say why, without patient details; it is kept with the delivery.",
        error_messages={"required": "Give a reason."},
    )
