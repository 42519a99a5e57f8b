"""DogStatsD metrics: sent where an agent is named, silently nothing otherwise."""

import socket

import pytest

from hcoint import metrics


@pytest.fixture
def agent(monkeypatch):
    """A UDP socket on 127.0.0.1 standing in for the agent's DogStatsD port."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    monkeypatch.setenv("DD_DOGSTATSD_URL", f"udp://127.0.0.1:{receiver.getsockname()[1]}")
    monkeypatch.setenv("DD_DOGSTATSD_DISABLE", "false")
    for name in ("DD_ENV", "DD_SERVICE", "DD_VERSION"):
        monkeypatch.delenv(name, raising=False)
    yield receiver
    receiver.close()
    monkeypatch.setattr(metrics, "_client", None)


def test_metrics_are_off_without_an_agent(monkeypatch):
    monkeypatch.delenv("DD_DOGSTATSD_URL", raising=False)
    monkeypatch.delenv("DD_AGENT_HOST", raising=False)
    monkeypatch.setenv("DD_DOGSTATSD_DISABLE", "false")
    assert metrics.enabled() is False
    metrics.gauge("usage.notes_sent", 3, partner_id=1)  # does nothing, raises nothing
    metrics.flush()


def test_metrics_stay_off_when_disabled_even_with_an_agent(monkeypatch):
    monkeypatch.setenv("DD_AGENT_HOST", "127.0.0.1")
    monkeypatch.setenv("DD_DOGSTATSD_DISABLE", "true")
    assert metrics.enabled() is False


def test_a_gauge_reaches_the_agent_with_opaque_tags_only(agent):
    metrics.gauge("usage.notes_sent", 3, partner_id=1, patient_name="Samplepatient")
    packet = agent.recv(4096).decode()
    assert packet.startswith("hcoint.usage.notes_sent:3|g|#")
    assert "partner_id:1" in packet
    assert "Samplepatient" not in packet
