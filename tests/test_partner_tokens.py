"""Verification tokens are stored hashed, identify the partner, and rotate without downtime."""

import hashlib

import pytest
from django.urls import reverse

from orders.models import AuditEvent, InboundMessage, Partner, hash_token
from tests.conftest import PARTNER_TOKEN, SECOND_PARTNER_TOKEN, sample_bytes
from tests.factories import PartnerFactory, partner_form

NEW_TOKEN = "rotated-token-abcdef0123456789"


def post_order(client, token, log_id="rotation-1"):
    body = sample_bytes("order-new.json").replace(b"0b5f2c1e-6a3d-4e8f-9b7a-1c2d3e4f5a60", log_id.encode())
    return client.post("/redox/webhook/", body, content_type="application/json", headers={"verification-token": token})


def row_text(partner):
    return " ".join(str(v) for v in Partner.objects.filter(pk=partner.pk).values().get().values())


def test_a_token_is_stored_only_as_its_hash(db):
    # Built as the admin and configure_partner build one, not by PartnerFactory, which hashes itself.
    partner = Partner(name="Cascade Health", destination_id="dest-1", destination_name="Cascade Health Epic")
    assert partner.set_tokens(PARTNER_TOKEN) == ["verification token"]
    partner.save()
    partner.refresh_from_db()
    assert partner.token_hash == hash_token(PARTNER_TOKEN)
    # The stored form is fixed: another hash would lock out every partner already configured.
    assert partner.token_hash == hashlib.sha256(PARTNER_TOKEN.encode()).hexdigest()
    assert partner.second_token_hash == ""
    assert PARTNER_TOKEN not in row_text(partner)
    assert Partner.objects.for_token(PARTNER_TOKEN) == partner


def test_a_token_finds_only_its_own_active_partner(partner, second_partner):
    assert Partner.objects.for_token(PARTNER_TOKEN) == partner
    assert Partner.objects.for_token("unknown-token-0123456789") is None
    assert Partner.objects.for_token("") is None


def test_during_a_rotation_both_tokens_work_and_afterwards_only_the_new_one(client, partner):
    partner.set_tokens(PARTNER_TOKEN, second_token=NEW_TOKEN)
    partner.save()
    assert post_order(client, PARTNER_TOKEN, "r-1").status_code == 200
    assert post_order(client, NEW_TOKEN, "r-2").status_code == 200
    assert InboundMessage.objects.filter(partner=partner).count() == 2

    partner.set_tokens(NEW_TOKEN, clear_second_token=True)
    partner.save()
    assert post_order(client, NEW_TOKEN, "r-3").status_code == 200
    assert post_order(client, PARTNER_TOKEN, "r-4").status_code == 401
    assert InboundMessage.objects.count() == 3


def test_set_tokens_keeps_what_it_is_not_given_and_says_what_changed(partner):
    """The admin and configure_partner store tokens through set_tokens, so its rotation rules are theirs."""
    assert partner.set_tokens(second_token=NEW_TOKEN) == ["second token"]
    assert partner.token_hash == hash_token(PARTNER_TOKEN)
    assert partner.set_tokens(NEW_TOKEN) == ["verification token"]
    assert partner.second_token_hash == hash_token(NEW_TOKEN)
    assert partner.set_tokens(NEW_TOKEN, NEW_TOKEN) == []
    assert partner.set_tokens(clear_second_token=True) == ["second token removed"]
    assert (partner.token_hash, partner.second_token_hash) == (hash_token(NEW_TOKEN), "")
    assert partner.set_tokens(clear_second_token=True) == []
    with pytest.raises(ValueError, match="not both"):
        partner.set_tokens(second_token=PARTNER_TOKEN, clear_second_token=True)


def test_a_token_is_used_by_another_only_when_another_partner_holds_it(partner, second_partner):
    assert not partner.token_used_by_another(PARTNER_TOKEN)
    assert partner.token_used_by_another(SECOND_PARTNER_TOKEN)
    assert Partner(name="New").token_used_by_another(PARTNER_TOKEN)
    second_partner.set_tokens(second_token=NEW_TOKEN)
    second_partner.save()
    assert partner.token_used_by_another(NEW_TOKEN)


def test_the_admin_creates_a_partner_with_a_hashed_token_and_audits_it(admin_client, admin_user):
    response = admin_client.post(reverse("admin:orders_partner_add"), partner_form())
    assert response.status_code == 302
    partner = Partner.objects.get(name="Northwind Clinic")
    assert partner.token_hash == hash_token("northwind-token-0123456789")
    assert partner.second_token_hash == ""
    assert "northwind-token-0123456789" not in row_text(partner)
    event = AuditEvent.objects.get(action=AuditEvent.Action.PARTNER_CHANGE)
    assert (event.actor, event.object_id) == (admin_user, str(partner.pk))


def test_the_admin_never_shows_a_token_back(admin_client, partner):
    response = admin_client.get(reverse("admin:orders_partner_change", args=[partner.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert partner.token_hash not in html
    assert PARTNER_TOKEN not in html
    assert "Verification token is set." in html


def test_the_admin_adds_a_second_token_then_ends_the_rotation(admin_client, partner):
    url = reverse("admin:orders_partner_change", args=[partner.pk])
    form = partner_form(name=partner.name, new_verification_token="", second_token=NEW_TOKEN)
    assert admin_client.post(url, form).status_code == 302
    partner.refresh_from_db()
    assert partner.token_hash == hash_token(PARTNER_TOKEN)
    assert partner.second_token_hash == hash_token(NEW_TOKEN)
    assert Partner.objects.for_token(NEW_TOKEN) == partner

    form = partner_form(name=partner.name, new_verification_token=NEW_TOKEN, remove_second_token="on")
    assert admin_client.post(url, form).status_code == 302
    partner.refresh_from_db()
    assert partner.token_hash == hash_token(NEW_TOKEN)
    assert partner.second_token_hash == ""
    assert Partner.objects.for_token(PARTNER_TOKEN) is None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PARTNER_CHANGE, object_id=str(partner.pk)).count() == 2


def test_editing_other_fields_keeps_the_tokens(admin_client, partner):
    before = (partner.token_hash, partner.second_token_hash)
    url = reverse("admin:orders_partner_change", args=[partner.pk])
    form = partner_form(name=partner.name, new_verification_token="", outbound_model="notes")
    assert admin_client.post(url, form).status_code == 302
    partner.refresh_from_db()
    assert partner.outbound_model == Partner.Outbound.NOTES
    assert (partner.token_hash, partner.second_token_hash) == before


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"new_verification_token": ""}, "new_verification_token", "needs a verification token"),
        ({"new_verification_token": "short"}, "new_verification_token", "at least 16 characters"),
        ({"new_verification_token": "has a space in it 0123"}, "new_verification_token", "spaces"),
        ({"new_verification_token": PARTNER_TOKEN}, "new_verification_token", "Another partner"),
        ({"second_token": "northwind-token-0123456789"}, "second_token", "must differ"),
    ],
)
def test_the_admin_refuses_an_unfit_token(admin_client, partner, overrides, field, message):
    response = admin_client.post(reverse("admin:orders_partner_add"), partner_form(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert not Partner.objects.filter(name="Northwind Clinic").exists()


def test_the_admin_refuses_a_second_token_equal_to_the_current_one(admin_client, partner):
    url = reverse("admin:orders_partner_change", args=[partner.pk])
    form = partner_form(name=partner.name, new_verification_token="", second_token=PARTNER_TOKEN)
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert "must differ" in " ".join(response.context["adminform"].form.errors["second_token"])
    partner.refresh_from_db()
    assert partner.second_token_hash == ""


def test_partners_cannot_be_deleted_from_the_admin(admin_client, partner):
    assert admin_client.post(reverse("admin:orders_partner_delete", args=[partner.pk])).status_code == 403
    assert Partner.objects.filter(pk=partner.pk).exists()


# --- One token rule for the admin and configure_partner ------------------------

SAME_RULE_CASES = [
    # (admin form overrides, configure_partner arguments after --name, the shared message)
    ({"new_verification_token": "short"}, ["--verification-token", "short"], "at least 16 characters"),
    (
        {"new_verification_token": PARTNER_TOKEN},
        ["--verification-token", PARTNER_TOKEN],
        "Another partner already uses this token.",
    ),
    (
        {"new_verification_token": "demo-verification-token-0123456789abcdef"},
        ["--verification-token", "demo-verification-token-0123456789abcdef"],
        "public demo token",
    ),
    (
        {"new_verification_token": "", "second_token": "northwind-token-0123456789"},
        ["--second-token", "northwind-token-0123456789"],
        "must differ",
    ),
    (
        {"new_verification_token": "", "second_token": "another-token-0123456789", "remove_second_token": "on"},
        ["--second-token", "another-token-0123456789", "--clear-second-token"],
        "not both",
    ),
]


@pytest.mark.parametrize(("form", "args", "message"), SAME_RULE_CASES, ids=[c[2] for c in SAME_RULE_CASES])
def test_the_admin_and_configure_partner_refuse_the_same_tokens(admin_client, partner, form, args, message):
    from django.core.management import CommandError, call_command

    existing = PartnerFactory(name="Northwind Clinic", token="northwind-token-0123456789")  # noqa: S106
    before = Partner.objects.values("token_hash", "second_token_hash").get(pk=existing.pk)

    url = reverse("admin:orders_partner_change", args=[existing.pk])
    response = admin_client.post(url, partner_form(**form))
    assert response.status_code == 200
    assert message in " ".join(" ".join(errors) for errors in response.context["adminform"].form.errors.values())

    with pytest.raises(CommandError, match=message):
        call_command("configure_partner", "--name", "Northwind Clinic", *args)
    assert Partner.objects.values("token_hash", "second_token_hash").get(pk=existing.pk) == before


def test_the_demo_token_is_allowed_in_development(partner, settings):
    settings.DEBUG = True
    assert partner.token_problems(settings.DEMO_VERIFICATION_TOKEN) == {}


def test_making_the_second_token_the_only_one_needs_the_rotation_ended(partner):
    partner.set_tokens(second_token=NEW_TOKEN)
    assert "must differ" in partner.token_problems(NEW_TOKEN)["token"]
    assert partner.token_problems(NEW_TOKEN, clear_second_token=True) == {}
