"""Legal hold in the admin: the form fields that set or release it, and the audit of each change.

A hold keeps an order (or every order of a partner) out of the retention purge
(orders/retention.py). Setting one needs a reason; setting and releasing are audited
(`legal_hold_set` / `legal_hold_released`), with the reason kept on the record itself.
"""

from django import forms

from orders.audit import audit_record


class LegalHoldFormMixin(forms.Form):
    """For a ModelForm of a LegalHold model: hold fields applied through `change_legal_hold`,
    so the form knows what changed and the caller can audit it (`hold_action`)."""

    legal_hold = forms.BooleanField(
        label="Under legal hold",
        required=False,
        help_text='While on, the retention rules remove nothing here (docs/runbook.md, "Retention and legal hold").',
    )
    legal_hold_reason = forms.CharField(
        label="Legal hold reason",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why, for example a matter or ticket number. Never patient data.",
    )

    hold_action = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.setdefault("legal_hold", self.instance.legal_hold)
        self.initial.setdefault("legal_hold_reason", self.instance.legal_hold_reason)
        # The admin's ModelForm copies the fields onto the instance before save: remember them.
        self._hold_before = (self.instance.legal_hold, self.instance.legal_hold_reason)

    @property
    def edits_legal_hold(self):
        """False when the admin showed the hold read-only (no orders.set_legal_hold): the
        fields are then not in the form, and whatever was posted for them is ignored."""
        return "legal_hold" in self.fields

    def clean(self):
        cleaned = super().clean()
        if not self.edits_legal_hold:
            return cleaned
        problem = self.instance.legal_hold_problem(cleaned.get("legal_hold"), cleaned.get("legal_hold_reason"))
        if problem:
            self.add_error("legal_hold_reason", problem)
        return cleaned

    def apply_legal_hold(self):
        self.instance.legal_hold, self.instance.legal_hold_reason = self._hold_before
        if not self.edits_legal_hold:
            return
        self.hold_action = self.instance.change_legal_hold(
            bool(self.cleaned_data.get("legal_hold")), self.cleaned_data.get("legal_hold_reason")
        )


def audit_legal_hold(request, obj, form, order=None):
    """Record the hold change `form` made to `obj`, if it made one."""
    if form.hold_action is not None:
        audit_record(request=request, action=form.hold_action, obj=obj, order=order)
