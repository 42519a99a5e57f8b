"""The partner admin: connection settings, write-only verification tokens and the partner-wide legal hold."""

from django import forms
from django.contrib import admin

from orders.admin_hold import LegalHoldFormMixin, audit_legal_hold
from orders.audit import audit_record
from orders.models import AuditEvent, Partner


class PartnerAdminForm(LegalHoldFormMixin, forms.ModelForm):
    """Tokens are write-only: typed once, stored hashed, never shown again."""

    new_verification_token = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The token typed into Redox's destination settings. Leave blank to keep the current one.",
    )
    second_token = forms.CharField(
        label="Second token",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="During a rotation, the next token; both are accepted until the rotation ends.",
    )
    remove_second_token = forms.BooleanField(
        required=False, help_text="End a rotation: only the verification token stays valid."
    )

    class Meta:
        model = Partner
        fields = [
            "name",
            "is_active",
            "is_production",
            "destination_id",
            "destination_name",
            "outbound_model",
            "note_due_days",
        ]

    # Partner.token_problems' argument names -> this form's fields.
    TOKEN_FIELDS = {
        "token": "new_verification_token",
        "second_token": "second_token",
        "clear_second_token": "remove_second_token",
    }

    def clean(self):
        cleaned = super().clean()
        problems = self.instance.token_problems(
            cleaned.get("new_verification_token"),
            cleaned.get("second_token"),
            clear_second_token=bool(cleaned.get("remove_second_token")),
        )
        for argument, message in problems.items():
            self.add_error(self.TOKEN_FIELDS[argument], message)
        return cleaned

    def save(self, commit=True):
        partner = super().save(commit=False)
        self.apply_legal_hold()
        partner.set_tokens(
            self.cleaned_data.get("new_verification_token"),
            self.cleaned_data.get("second_token"),
            clear_second_token=bool(self.cleaned_data.get("remove_second_token")),
        )
        if commit:
            partner.save()
        return partner


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    form = PartnerAdminForm
    list_display = [
        "name",
        "is_active",
        "is_production",
        "outbound_model",
        "destination_name",
        "note_due_days",
        "rotating",
        "legal_hold",
        "updated_at",
    ]
    list_filter = ["is_active", "is_production", "outbound_model", "legal_hold"]
    search_fields = ["name", "destination_id"]
    readonly_fields = ["token_status", "legal_hold_since", "created_at", "updated_at"]
    HOLD_FIELDS = ("legal_hold", "legal_hold_reason")
    fieldsets = [
        (None, {"fields": ["name", "is_active", "is_production"]}),
        ("Worklist", {"fields": ["note_due_days"]}),
        ("Redox", {"fields": ["destination_id", "destination_name", "outbound_model"]}),
        (
            "Verification tokens",
            {"fields": ["token_status", "new_verification_token", "second_token", "remove_second_token"]},
        ),
        (
            "Legal hold (every order of this partner)",
            {"fields": ["legal_hold", "legal_hold_reason", "legal_hold_since"]},
        ),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(boolean=True, description="rotating")
    def rotating(self, obj):
        return bool(obj.second_token_hash)

    @admin.display(description="tokens")
    def token_status(self, obj):
        if not obj.token_hash:
            return "No token yet."
        if obj.second_token_hash:
            return "Verification token and a second token are set (rotation in progress)."
        return "Verification token is set."

    def get_readonly_fields(self, request, obj=None):
        # A partner-wide hold covers every order of the partner: it needs the same permission
        # as one order's hold (OrderAdmin). Without it the hold is shown, not editable, and
        # the form leaves it as it is whatever is posted (LegalHoldFormMixin.edits_legal_hold).
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.has_perm("orders.set_legal_hold"):
            readonly[:0] = self.HOLD_FIELDS
        return readonly

    def has_delete_permission(self, request, obj=None):
        # Partners are deactivated, not deleted: their messages and orders refer to them.
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record(request=request, action=AuditEvent.Action.PARTNER_CHANGE, obj=obj)
        audit_legal_hold(request, obj, form)
