"""The back office: partners are edited here; everything Redox sent and we did is shown, read-only.

Messages, orders, notes and deliveries are records of what happened, so the admin
shows them and never edits or deletes them (staff act on orders and deliveries
through the staff pages, which keep the audit trail). Opening a raw message or an
order shows patient data, so it is audited like the staff pages.
"""

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from orders.audit import audit_record
from orders.models import (
    AuditEvent,
    ClinicalNote,
    Delivery,
    DeliveryAttempt,
    InboundMessage,
    Order,
    Partner,
    Redelivery,
    hash_token,
)
from redox.verification import token_problem


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown to whoever may view it; nobody adds, changes or deletes through the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PartnerAdminForm(forms.ModelForm):
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
            "source_id",
            "source_name",
            "destination_id",
            "destination_name",
            "outbound_model",
        ]

    def clean(self):
        cleaned = super().clean()
        token = cleaned.get("new_verification_token")
        second = cleaned.get("second_token")
        if not token and not self.instance.token_hash:
            self.add_error("new_verification_token", "A new partner needs a verification token.")
        for field_name, value in (("new_verification_token", token), ("second_token", second)):
            if not value:
                continue
            problem = token_problem(value)
            if problem:
                self.add_error(field_name, problem)
            elif self.instance.token_used_by_another(value):
                self.add_error(field_name, "Another partner already uses this token.")
        current = hash_token(token) if token else self.instance.token_hash
        if second and hash_token(second) == current:
            self.add_error("second_token", "The second token must differ from the verification token.")
        if second and cleaned.get("remove_second_token"):
            self.add_error("remove_second_token", "Either set a second token or remove it, not both.")
        return cleaned

    def save(self, commit=True):
        partner = super().save(commit=False)
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
        "rotating",
        "updated_at",
    ]
    list_filter = ["is_active", "is_production", "outbound_model"]
    search_fields = ["name", "source_id", "destination_id"]
    readonly_fields = ["token_status", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "is_active", "is_production"]}),
        ("Redox", {"fields": ["source_id", "source_name", "destination_id", "destination_name", "outbound_model"]}),
        (
            "Verification tokens",
            {"fields": ["token_status", "new_verification_token", "second_token", "remove_second_token"]},
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

    def has_delete_permission(self, request, obj=None):
        # Partners are deactivated, not deleted: their messages and orders refer to them.
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record(request=request, action=AuditEvent.Action.PARTNER_CHANGE, obj=obj)


def _admin_link(obj):
    url = reverse(f"admin:orders_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj)


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "ehr_order_id", "partner", "state", "is_test", "first_received_at", "last_event_at"]
    list_filter = ["partner", "state", "is_test", "first_received_at"]
    search_fields = ["=ehr_order_id", "identifiers_text", "patient_last_name"]
    list_select_related = ["partner"]
    date_hierarchy = "first_received_at"
    readonly_fields = ["message_links"]

    @admin.display(description="messages")
    def message_links(self, obj):
        messages = obj.messages.defer("body").order_by("received_at", "id")
        return format_html_join(", ", "{}", ((_admin_link(m),) for m in messages)) or "None"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        order = (getattr(response, "context_data", None) or {}).get("original")
        if request.method == "GET" and response.status_code == 200 and order is not None:
            audit_record(request=request, action=AuditEvent.Action.VIEW_ORDER, obj=order, order=order)
        return response


def _raw_body(body):
    # Verbatim as Redox sent it; undecodable bytes are shown as U+FFFD, never interpreted.
    return format_html('<pre class="raw-body">{}</pre>', bytes(body).decode("utf-8", errors="replace"))


class RedeliveryInline(admin.StackedInline):
    """What Redox sent again under this message's dedupe key with other bytes; only here,
    on the (audited) message page, because the bodies carry patient data."""

    model = Redelivery
    fields = ["received_at", "body_sha256", "headers", "body_size", "raw_body"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        # Part of the message: whoever may open the message sees what came again under it.
        return request.user.has_perm("orders.view_inboundmessage")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="size (bytes)")
    def body_size(self, obj):
        return len(obj.body)

    @admin.display(description="raw body")
    def raw_body(self, obj):
        return _raw_body(obj.body)


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = [
        "__str__",
        "partner",
        "data_model",
        "event_type",
        "status",
        "received_at",
        "times_seen",
        "redelivery_count",
        "redox_log_id",
    ]
    list_filter = ["partner", "status", "received_at", "data_model"]
    search_fields = ["orders__ehr_order_id", "redox_log_id"]
    list_select_related = ["partner"]
    date_hierarchy = "received_at"
    fields = [
        "partner",
        "status",
        "error",
        "data_model",
        "event_type",
        "event_at",
        "redox_log_id",
        "dedupe_key",
        "received_at",
        "times_seen",
        "last_seen_at",
        "redelivery_count",
        "processed_at",
        "headers",
        "order_links",
        "body_size",
        "body_sha256",
        "raw_body",
    ]
    readonly_fields = fields
    inlines = [RedeliveryInline]

    def get_queryset(self, request):
        # The list never needs the bodies, which can be megabytes each.
        return super().get_queryset(request).defer("body").annotate(redelivery_count=Count("redeliveries"))

    @admin.display(description="redeliveries", ordering="redelivery_count")
    def redelivery_count(self, obj):
        return obj.redelivery_count

    @admin.display(description="orders")
    def order_links(self, obj):
        return format_html_join(", ", "{}", ((_admin_link(o),) for o in obj.orders.all())) or "None"

    @admin.display(description="size (bytes)")
    def body_size(self, obj):
        return len(obj.body)

    @admin.display(description="raw body")
    def raw_body(self, obj):
        return _raw_body(obj.body)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        message = (getattr(response, "context_data", None) or {}).get("original")
        if request.method == "GET" and response.status_code == 200 and message is not None:
            audit_record(
                request=request,
                action=AuditEvent.Action.VIEW_MESSAGE,
                obj=message,
                order=message.orders.order_by("id").first(),
            )
        return response


@admin.register(ClinicalNote)
class ClinicalNoteAdmin(ReadOnlyAdmin):
    # The PDF itself is not shown here: staff view it through the audited note pages.
    list_display = ["__str__", "order", "file_name", "size", "page_count", "uploaded_by", "uploaded_at"]
    list_filter = ["uploaded_at"]
    # `sha256` is the clean copy we keep and send; `original_sha256` the file as uploaded.
    search_fields = ["=order__ehr_order_id", "sha256", "original_sha256"]
    list_select_related = ["order", "uploaded_by"]
    fields = ["order", "file_name", "size", "sha256", "original_sha256", "page_count", "uploaded_by", "uploaded_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("content")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["started_at", "duration_ms", "outcome", "http_status", "redox_log_id", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "order", "status", "is_correction", "attempt_count", "next_attempt_at", "sent_at"]
    list_filter = ["status", "is_correction", "order__partner", "created_at"]
    search_fields = ["=order__ehr_order_id", "redox_log_id"]
    list_select_related = ["order"]
    inlines = [DeliveryAttemptInline]
    fields = [
        "order",
        "note",
        "status",
        "is_correction",
        "correction_reason",
        "created_by",
        "created_at",
        "attempt_count",
        "next_attempt_at",
        "sending_started_at",
        "sent_at",
        "redox_log_id",
        "last_error",
        "abandoned_reason",
        "abandoned_by",
    ]
    readonly_fields = fields


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "actor_username",
        "action",
        "outcome",
        "object_type",
        "object_id",
        "order",
        "ip_address",
    ]
    list_filter = ["action", "outcome", "created_at"]
    search_fields = ["actor_username", "=object_id", "=request_id"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "actor",
        "actor_username",
        "action",
        "outcome",
        "object_type",
        "object_id",
        "order",
        "ip_address",
        "request_id",
    ]
    readonly_fields = fields
