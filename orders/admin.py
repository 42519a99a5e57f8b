"""The back office: partners are edited here (orders/admin_partner.py); everything Redox sent
and we did is shown, read-only, except an order's legal hold (orders/admin_hold.py).

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

from orders.admin_hold import LegalHoldFormMixin, audit_legal_hold
from orders.admin_partner import PartnerAdmin, PartnerAdminForm
from orders.audit import audit_record
from orders.models import (
    AuditEvent,
    ClinicalNote,
    Delivery,
    DeliveryAttempt,
    InboundMessage,
    Order,
    Redelivery,
)
from redox import inbound

# Registered in orders/admin_partner.py (split off to keep this module short).
__all__ = ["PartnerAdmin", "PartnerAdminForm"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown to whoever may view it; nobody adds, changes or deletes through the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _admin_link(obj):
    url = reverse(f"admin:orders_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj)


class OrderHoldForm(LegalHoldFormMixin, forms.ModelForm):
    class Meta:
        model = Order
        fields = ["legal_hold", "legal_hold_reason"]


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    """Read-only, except the legal hold, for whoever may set one (orders.set_legal_hold)."""

    form = OrderHoldForm
    list_display = [
        "__str__",
        "ehr_order_id",
        "partner",
        "state",
        "is_test",
        "legal_hold",
        "first_received_at",
        "last_event_at",
    ]
    list_filter = ["partner", "state", "is_test", "legal_hold", "first_received_at"]
    search_fields = ["=ehr_order_id", "identifiers_text", "patient_last_name"]
    list_select_related = ["partner"]
    date_hierarchy = "first_received_at"
    HOLD_FIELDS = ("legal_hold", "legal_hold_reason")

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("orders.set_legal_hold")

    def get_readonly_fields(self, request, obj=None):
        shown = [field.name for field in Order._meta.fields if field.name not in self.HOLD_FIELDS]
        return [*shown, "message_links"]

    def save_model(self, request, obj, form, change):
        form.apply_legal_hold()
        # Only the hold: the rest is the record of what Redox sent, and updated_at (the
        # retention clock) must not move because of a hold.
        obj.save(update_fields=["legal_hold", "legal_hold_reason", "legal_hold_since"])
        audit_legal_hold(request, obj, form, order=obj)

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


class RawBodyFields:
    """The read-only size and raw-body fields of a model that keeps what Redox sent (`body`)."""

    @admin.display(description="size (bytes)")
    def body_size(self, obj):
        return len(obj.body)

    @admin.display(description="raw body")
    def raw_body(self, obj):
        if obj.body_purged_at:
            return f"Removed on {obj.body_purged_at:%Y-%m-%d} under the retention rules (RETENTION_PAYLOAD_DAYS)."
        return _raw_body(obj.body)


class RedeliveryInline(RawBodyFields, admin.StackedInline):
    """What Redox sent again under this message's dedupe key with other bytes; only here,
    on the (audited) message page, because the bodies carry patient data."""

    model = Redelivery
    fields = readonly_fields = ("received_at", "body_sha256", "headers", "body_size", "raw_body")
    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        # Part of the message: whoever may open the message sees what came again under it.
        return request.user.has_perm("orders.view_inboundmessage")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(InboundMessage)
class InboundMessageAdmin(RawBodyFields, ReadOnlyAdmin):
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
    fields = readonly_fields = (
        "partner",
        "status",
        "error",
        "environment",
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
        "body_purged_at",
        "raw_body",
    )
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

    @admin.display(description="environment (Meta.Test)")
    def environment(self, obj):
        """The message's Meta.Test against its partner's is_production; a mismatch is what
        `message.environment_mismatch` logged when it arrived."""
        read = inbound.read(obj.body)
        if read.error and read.meta == inbound.Meta():
            return f"Unknown: {read.error}"
        is_test = read.meta.is_test
        mismatch = obj.partner.environment_mismatch(is_test)
        if mismatch:
            return format_html('<strong class="environment-mismatch">Mismatch: {}</strong>', mismatch)
        if is_test is None:
            return "Unknown: the message has no Meta.Test."
        connection = "production" if obj.partner.is_production else "test"
        return f"{'Test' if is_test else 'Production'} message on a {connection} connection, as expected."

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
    fields = readonly_fields = (
        "order",
        "file_name",
        "size",
        "sha256",
        "original_sha256",
        "page_count",
        "uploaded_by",
        "uploaded_at",
        "content_purged_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).defer("content")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = readonly_fields = ("started_at", "duration_ms", "outcome", "http_status", "redox_log_id", "error")
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
    fields = readonly_fields = (
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
        "confirmed_at",
        "confirmation_checked_at",
        "next_check_at",
        "confirm_checks",
        "last_error",
        "abandoned_reason",
        "abandoned_by",
        "abandoned_at",
    )


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
    fields = readonly_fields = (
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
    )
