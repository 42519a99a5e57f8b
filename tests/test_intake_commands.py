"""configure_partner, import_redox_messages, reprocess_messages and demo_setup."""

import io
import json
import re
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from orders.models import AuditEvent, InboundMessage, Order, Partner, hash_token
from tests.conftest import SAMPLES, sample_bytes, sample_json
from tests.factories import InboundMessageFactory

TOKEN = "configured-token-0123456789abcdef"


def run(*args, **options):
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def configure(*extra):
    return run(
        "configure_partner",
        "--name",
        "Cascade Health",
        "--verification-token",
        TOKEN,
        "--destination-id",
        "dest-1",
        "--destination-name",
        "Cascade Epic",
        *extra,
    )


def message_line(log_id, order_id, event="New"):
    data = sample_json("order-new.json")
    data["Meta"]["Logs"][0]["ID"] = log_id
    data["Meta"]["EventType"] = event
    data["Order"]["ID"] = order_id
    return json.dumps(data)


# --- configure_partner --------------------------------------------------------


def test_configure_partner_creates_a_partner_with_a_hashed_token(db):
    out = configure("--outbound", "notes")
    partner = Partner.objects.get()
    assert "Created partner 'Cascade Health'" in out
    assert TOKEN not in out
    assert partner.token_hash == hash_token(TOKEN)
    assert (partner.destination_id, partner.destination_name) == ("dest-1", "Cascade Epic")
    assert partner.outbound_model == Partner.Outbound.NOTES
    assert partner.is_active and not partner.is_production
    row = " ".join(str(v) for v in Partner.objects.values().get().values())
    assert TOKEN not in row
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PARTNER_CHANGE, object_id=str(partner.pk)).count() == 1


def test_configure_partner_run_twice_changes_nothing(db):
    configure()
    before = Partner.objects.values().get()
    out = configure()
    assert "already up to date" in out
    after = Partner.objects.values().get()
    assert after == before
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PARTNER_CHANGE).count() == 1


def test_configure_partner_updates_and_rotates(db):
    configure()
    out = run(
        "configure_partner", "--name", "Cascade Health", "--second-token", "next-token-0123456789abcd", "--production"
    )
    assert "is_production" in out and "second token" in out
    partner = Partner.objects.get()
    assert partner.is_production
    assert Partner.objects.for_token(TOKEN) == partner
    assert Partner.objects.for_token("next-token-0123456789abcd") == partner
    run(
        "configure_partner",
        "--name",
        "Cascade Health",
        "--verification-token",
        "next-token-0123456789abcd",
        "--clear-second-token",
    )
    assert Partner.objects.for_token(TOKEN) is None
    assert Partner.objects.for_token("next-token-0123456789abcd") == partner
    assert Partner.objects.get().second_token_hash == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "New One"], "needs --verification-token, --destination-id, --destination-name"),
        (
            ["--name", "New One", "--verification-token", "short", "--destination-id", "d", "--destination-name", "n"],
            "at least 16 characters",
        ),
        (
            ["--name", "New One", "--verification-token", TOKEN, "--destination-id", "d", "--destination-name", "n"],
            "--verification-token: Another partner already uses this token",
        ),
        (["--name", "Cascade Health", "--second-token", TOKEN], "must differ"),
        (["--name", "Cascade Health", "--second-token", "x" * 20, "--clear-second-token"], "not both"),
    ],
)
def test_configure_partner_refuses_bad_input(db, args, message):
    configure()
    with pytest.raises(CommandError, match=message):
        run("configure_partner", *args)
    assert Partner.objects.count() == 1


# --- import_redox_messages ----------------------------------------------------


def test_import_a_single_json_file(partner):
    out = run("import_redox_messages", "--partner", partner.name, str(SAMPLES / "order-new.json"))
    assert "1 new, 0 duplicate, 0 failed" in out
    message = InboundMessage.objects.get()
    assert bytes(message.body) == sample_bytes("order-new.json")
    assert Order.objects.get().ehr_order_id == "157720311"


def test_import_json_lines_counts_new_duplicate_and_failed_and_is_idempotent(partner, tmp_path):
    lines = [
        message_line("log-1", "A-1"),
        "",
        message_line("log-2", "A-2"),
        message_line("log-1", "A-1"),
        "{not json",
        json.dumps({"Meta": {"DataModel": "Results", "EventType": "New", "Logs": [{"ID": "log-r"}]}}),
    ]
    file = tmp_path / "history.jsonl"
    file.write_text("\r\n".join(lines) + "\n", encoding="utf-8")
    out = run("import_redox_messages", "--partner", partner.name, str(file))
    assert "2 new, 1 duplicate, 1 failed, 1 ignored" in out
    assert "reprocess_messages --failed" in out
    assert set(Order.objects.values_list("ehr_order_id", flat=True)) == {"A-1", "A-2"}

    again = run("import_redox_messages", "--partner", partner.name, str(file))
    assert "0 new, 5 duplicate, 0 failed, 0 ignored" in again
    assert InboundMessage.objects.count() == 4
    assert Order.objects.count() == 2


def test_import_a_folder_reads_json_jsonl_and_ndjson_recursively(partner, tmp_path):
    (tmp_path / "a.json").write_text(message_line("f-1", "F-1"), encoding="utf-8")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "b.ndjson").write_text(
        message_line("f-2", "F-2") + "\n" + message_line("f-3", "F-3", "Cancel") + "\n", encoding="utf-8"
    )
    (tmp_path / "nested" / "notes.txt").write_text("not a message", encoding="utf-8")
    out = run("import_redox_messages", "--partner", partner.name, str(tmp_path))
    assert out.startswith("2 file(s): 3 new, 0 duplicate, 0 failed")
    assert Order.objects.get(ehr_order_id="F-3").state == Order.State.CANCELLED
    assert "3 duplicate" in run("import_redox_messages", "--partner", partner.name, str(tmp_path))


def test_imported_messages_take_the_same_path_as_the_webhook(partner, client):
    from tests.conftest import PARTNER_TOKEN

    client.post(
        "/redox/webhook/",
        sample_bytes("order-new.json"),
        content_type="application/json",
        headers={"verification-token": PARTNER_TOKEN},
    )
    out = run("import_redox_messages", "--partner", partner.name, str(SAMPLES / "order-new.json"))
    assert "0 new, 1 duplicate" in out
    assert InboundMessage.objects.get().times_seen == 2


def test_import_refuses_an_unknown_partner_a_missing_path_and_a_wrong_extension(partner, tmp_path):
    with pytest.raises(CommandError, match="No partner named"):
        run("import_redox_messages", "--partner", "Nobody", str(SAMPLES / "order-new.json"))
    with pytest.raises(CommandError, match="No such file"):
        run("import_redox_messages", "--partner", partner.name, str(tmp_path / "missing.json"))
    with pytest.raises(CommandError, match="expected a .json"):
        run("import_redox_messages", "--partner", partner.name, str(SAMPLES / "clinical-note.pdf"))
    assert InboundMessage.objects.count() == 0


def test_import_requires_a_partner(partner):
    with pytest.raises(CommandError, match="--partner"):
        call_command("import_redox_messages", str(SAMPLES / "order-new.json"))


# --- reprocess_messages -------------------------------------------------------


def test_reprocess_failed_applies_messages_once_the_cause_is_fixed(partner, tmp_path):
    # Building the orders crashes, on the one-statement path and the general one alike.
    with mock.patch("orders.order_apply._fill", side_effect=RuntimeError("database refused")):
        run("import_redox_messages", "--partner", partner.name, str(SAMPLES / "order-new.json"))
        run("import_redox_messages", "--partner", partner.name, str(SAMPLES / "order-update.json"))
    assert InboundMessage.objects.filter(status=InboundMessage.Status.FAILED).count() == 2
    assert Order.objects.count() == 0

    out = run("reprocess_messages", "--failed")
    assert "2 message(s): 2 processed, 0 ignored, 0 still failed" in out
    order = Order.objects.get()
    assert order.priority == "Stat"
    assert order.messages.count() == 2
    assert set(InboundMessage.objects.values_list("error", flat=True)) == {""}
    assert "0 message(s)" in run("reprocess_messages", "--failed")


def test_reprocess_leaves_messages_that_still_fail_failed(partner):
    run("import_redox_messages", "--partner", partner.name, str(SAMPLES / "challenge-post.json"))
    out = run("reprocess_messages", "--failed")
    assert "1 still failed" in out
    assert InboundMessage.objects.get().status == InboundMessage.Status.FAILED


def test_reprocess_received_applies_interrupted_messages_for_one_partner(partner, second_partner):
    # Stored, but the process died before applying them.
    InboundMessageFactory(partner=partner)
    InboundMessageFactory(partner=second_partner)
    out = run("reprocess_messages", "--received", "--partner", partner.name)
    assert "1 message(s): 1 processed" in out
    assert Order.objects.get().partner == partner
    assert InboundMessage.objects.get(partner=second_partner).status == InboundMessage.Status.RECEIVED


def test_reprocess_needs_to_be_told_which_messages(db):
    with pytest.raises(CommandError, match="--failed"):
        run("reprocess_messages")


# --- demo_setup ---------------------------------------------------------------


def test_demo_setup_refuses_to_run_outside_development(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        run("demo_setup")
    assert not Partner.objects.exists()
    assert not get_user_model().objects.filter(username="demo").exists()


def printed_password(out):
    return re.search(r"password: (\S+)", out).group(1)


def test_demo_setup_configures_a_partner_a_login_and_test_orders(db, settings):
    settings.DEBUG = True
    settings.REDOX_TEST_VERIFICATION_TOKEN = "sandbox-token-from-env-0123456789"
    out = run("demo_setup")
    partner = Partner.objects.get(name="Demo Hospital (sandbox)")
    source = sample_json("order-new.json")["Meta"]["Source"]
    assert (partner.destination_id, partner.destination_name) == (source["ID"], source["Name"])
    assert Partner.objects.for_token("sandbox-token-from-env-0123456789") == partner
    assert "http://127.0.0.1:8000/" in out
    assert "username: demo" in out
    user = get_user_model().objects.get(username="demo")
    assert user.is_staff and user.is_superuser
    assert user.groups.filter(name="admin").exists()
    assert user.check_password(printed_password(out))
    orders = Order.objects.filter(partner=partner)
    assert orders.count() == 3
    assert not orders.filter(ehr_order_id__in=["157720311", "157720312", "157720313"]).exists()
    assert all(m.status == InboundMessage.Status.PROCESSED for m in InboundMessage.objects.all())


def test_demo_setup_run_again_keeps_the_orders_and_gives_a_new_password(db, settings):
    settings.DEBUG = True
    first = run("demo_setup")
    second = run("demo_setup")
    assert Partner.objects.count() == 1
    assert Partner.objects.for_token("demo-verification-token-0123456789abcdef") is not None
    assert Order.objects.count() == 3
    assert get_user_model().objects.filter(username="demo").count() == 1
    user = get_user_model().objects.get(username="demo")
    assert not user.check_password(printed_password(first))
    assert user.check_password(printed_password(second))
