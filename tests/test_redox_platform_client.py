"""The Platform API client asks Redox (here, the sandbox playing it) for a log's latest status,
with a user-level key through the same signed-JWT token flow; the sandbox's page sets each log's status."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ImproperlyConfigured

from orders.confirm import confirm_due
from orders.models import Delivery, Order
from redox.auth import load_platform_auth
from redox.client import PlatformClient, get_platform_client
from redox.errors import RedoxError
from redox.sandbox.state import SandboxState
from tests.delivery_fakes import T0
from tests.factories import DeliveryFactory, OrderFactory
from tests.sandbox_server import start_in_thread

ORG = "org-4321"


@pytest.fixture(scope="module")
def key_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def sandbox():
    server = start_in_thread(state=SandboxState())
    yield server
    server.shutdown()
    server.server_close()


def platform_conf(base, key_pem, **changes):
    values = {
        "REDOX_API_BASE_URL": base,
        "REDOX_PLATFORM_BASE_URL": f"{base}/platform",
        "REDOX_PLATFORM_CLIENT_ID": "platform-client",
        "REDOX_PLATFORM_KEY_ID": "platform-kid",
        "REDOX_PLATFORM_PRIVATE_KEY": key_pem,
        "REDOX_PLATFORM_PRIVATE_KEY_FILE": "",
        "REDOX_ORGANIZATION_ID": ORG,
        "REDOX_CONNECT_TIMEOUT": 2,
        "REDOX_READ_TIMEOUT": 5,
    }
    values.update(changes)
    return SimpleNamespace(**values)


def test_each_status_the_sandbox_is_told_comes_back(sandbox, key_pem):
    client = PlatformClient.from_platform_settings(platform_conf(sandbox.origin(), key_pem))
    sandbox.state.add_logs(["log-a"])

    assert client.log_status("log-a").status == "pending"
    for status in ("succeeded", "failed", "filtered", "pending"):
        sandbox.state.set_log_status("log-a", status)
        answer = client.log_status("log-a")
        assert answer.status == status
        assert answer.is_final == (status != "pending")
        assert answer.attempts == 1


def test_an_unknown_log_is_a_retryable_error(sandbox, key_pem):
    client = PlatformClient.from_platform_settings(platform_conf(sandbox.origin(), key_pem))

    with pytest.raises(RedoxError) as raised:
        client.log_status("no-such-log")
    assert raised.value.status == 404
    assert raised.value.retryable


def test_the_platform_endpoint_wants_a_token(sandbox):
    sandbox.state.add_logs(["log-a"])
    answer = requests.get(f"{sandbox.origin()}/platform/v1/organizations/{ORG}/logs/log-a", timeout=5)
    assert answer.status_code == 401


def test_one_token_serves_many_look_ups(key_pem):
    base = "https://redox.test"
    conf = platform_conf(base, key_pem)
    client = PlatformClient.from_platform_settings(conf)
    with responses.RequestsMock() as mocked:
        token = mocked.post(f"{base}/v2/auth/token", json={"access_token": "tok", "expires_in": 300})
        body = {"payload": {"result": {"attempts": {"total": 2, "latest": {"status": "succeeded"}}}}}
        log = mocked.get(f"{base}/platform/v1/organizations/{ORG}/logs/log%2F1", json=body)
        for _ in range(5):
            assert client.log_status("log/1").status == "succeeded"
    assert token.call_count == 1
    assert log.call_count == 5
    assert log.calls[0].request.headers["Authorization"] == "Bearer tok"


def test_an_answer_without_a_known_status_is_an_error(key_pem):
    base = "https://redox.test"
    client = PlatformClient.from_platform_settings(platform_conf(base, key_pem))
    with responses.RequestsMock() as mocked:
        mocked.post(f"{base}/v2/auth/token", json={"access_token": "tok", "expires_in": 300})
        mocked.get(f"{base}/platform/v1/organizations/{ORG}/logs/x", json={"payload": {"status": "succeeded"}})
        with pytest.raises(RedoxError, match="attempts.latest.status"):
            client.log_status("x")


def test_no_platform_settings_means_no_client(settings):
    settings.REDOX_PLATFORM_CLIENT_ID = ""
    settings.REDOX_ORGANIZATION_ID = ""
    assert load_platform_auth() is None
    assert get_platform_client() is None


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"REDOX_ORGANIZATION_ID": ""}, "REDOX_ORGANIZATION_ID"),
        ({"REDOX_PLATFORM_KEY_ID": ""}, "REDOX_PLATFORM_KEY_ID"),
        ({"REDOX_PLATFORM_PRIVATE_KEY": ""}, "REDOX_PLATFORM_PRIVATE_KEY or REDOX_PLATFORM_PRIVATE_KEY_FILE"),
        ({"REDOX_PLATFORM_PRIVATE_KEY": "not a key"}, "REDOX_PLATFORM_PRIVATE_KEY is not"),
    ],
)
def test_a_half_platform_configuration_is_refused_naming_the_setting(key_pem, changes, text):
    with pytest.raises(ImproperlyConfigured, match=text):
        load_platform_auth(platform_conf("https://redox.test", key_pem, **changes))


def test_the_private_key_can_come_from_a_file(tmp_path, key_pem):
    path = tmp_path / "platform.pem"
    path.write_text(key_pem)
    auth = load_platform_auth(
        platform_conf(
            "https://redox.test", key_pem, REDOX_PLATFORM_PRIVATE_KEY="", REDOX_PLATFORM_PRIVATE_KEY_FILE=path
        )
    )
    assert auth.client_id == "platform-client"
    assert auth.algorithm == "RS384"


def test_the_page_sets_a_log_and_every_pending_log(sandbox):
    sandbox.state.add_logs(["log-a", "log-b", "log-c"])
    sandbox.state.set_log_status("log-c", "failed")
    base = sandbox.origin()

    page = requests.get(f"{base}/", timeout=5).text
    assert "log-a" in page and 'action="/_sandbox/log"' in page

    answer = requests.post(f"{base}/_sandbox/log", data={"log_id": "log-a", "status": "filtered"}, timeout=5)
    assert answer.status_code == 200  # after the redirect to the page
    requests.post(f"{base}/_sandbox/log", data={"log_id": "", "status": "succeeded"}, timeout=5)
    assert sandbox.state.log_list() == [("log-a", "filtered"), ("log-b", "succeeded"), ("log-c", "failed")]

    refused = requests.post(f"{base}/_sandbox/log", json={"log_id": "log-a", "status": "lost"}, timeout=5)
    assert refused.status_code == 400

    requests.post(f"{base}/_sandbox/log-default", json={"status": "succeeded"}, timeout=5)
    sandbox.state.add_logs(["log-d"])
    assert sandbox.state.log_status("log-d") == "succeeded"


@pytest.mark.django_db
def test_the_confirmer_files_a_delivery_once_the_sandbox_log_succeeds(sandbox, key_pem, partner, uploader, settings):
    for name, value in vars(platform_conf(sandbox.origin(), key_pem)).items():
        setattr(settings, name, value)
    order = OrderFactory(partner=partner, state=Order.State.SENT)
    delivery = DeliveryFactory(
        order=order,
        created_by=uploader,
        created_at=T0,
        status=Delivery.Status.SENT,
        sent_at=T0,
        redox_log_id="log-e",
        attempt_count=1,
    )
    sandbox.state.add_logs(["log-e"])

    confirm_due(now=T0 + timedelta(minutes=1))
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT

    sandbox.state.set_log_status("log-e", "succeeded")
    confirm_due(now=delivery.next_check_at)
    delivery.refresh_from_db()
    order.refresh_from_db()
    assert delivery.status == Delivery.Status.FILED
    assert order.state == Order.State.FILED
