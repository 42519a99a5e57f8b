"""The logging backstop: patient data that reaches a log call never reaches a log line."""

import datetime
import io
import json
import logging

import pytest

from hcoint.logging import JsonFormatter, PhiFilter, PlainFormatter
from hcoint.phi import WITHHELD

# Values live in constants, not in the lines that raise: a traceback shows source lines.
MRN = "MRN0048213"
BAD_DOB = "1948-02-30"
PAYLOAD = '{"Patient": {"Demographics": {"FirstName": "Testy", "LastName": "Samplepatient", "DOB": "1948-02-29"'


@pytest.fixture(params=["json", "plain"])
def captured(request):
    """A logger writing through one of the real formatters; returns (logger, output())."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if request.param == "json" else PlainFormatter())
    handler.addFilter(PhiFilter())
    logger = logging.getLogger(f"tests.phi_filter.{request.param}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream.getvalue
    logger.removeHandler(handler)
    logger.propagate = True


def test_sensitive_extra_keys_are_redacted_at_any_depth(captured):
    logger, output = captured
    logger.info(
        "order.created",
        extra={
            "event": "order.created",
            "order_id": 7,
            "patient_last_name": "Samplepatient",
            "dob": "1948-02-29",
            "details": {"Comments": "Discharge summary", "Identifiers": [{"ID": "MRN0048213"}], "count": 2},
            "payload": {"anything": "at all"},
        },
    )
    text = output()
    for value in ("Samplepatient", "1948-02-29", "Discharge summary", "MRN0048213", "at all"):
        assert value not in text
    assert "order_id" in text and "7" in text
    assert "[redacted]" in text


def test_a_json_decode_error_never_prints_the_payload(captured):
    logger, output = captured
    try:
        json.loads(PAYLOAD)
    except json.JSONDecodeError as exc:
        assert "Samplepatient" in exc.doc  # the exception does hold the payload
        logger.exception("message.failed")
        logger.warning("could not parse: %s", exc)
        logger.warning("could not parse", extra={"error": exc})
    text = output()
    assert "Samplepatient" not in text
    assert "Testy" not in text
    assert "line 1 column" in text  # the position survives, for debugging


def test_parser_errors_that_quote_their_input_are_withheld(captured):
    logger, output = captured
    try:
        try:
            datetime.date.fromisoformat(BAD_DOB)
        except ValueError as exc:
            raise RuntimeError(f"DOB {exc}") from exc
    except RuntimeError:
        logger.exception("message.failed")
    try:
        int(MRN)
    except ValueError as exc:
        logger.error("bad identifier %r", exc)
    text = output()
    assert "1948-02-30" not in text
    assert "MRN0048213" not in text
    assert "ValueError" in text and "RuntimeError" in text
    assert "direct cause" in text
    assert WITHHELD in text


def test_infrastructure_errors_keep_their_message(captured):
    logger, output = captured
    try:
        raise TimeoutError("redox.test did not answer within 60 s")
    except TimeoutError:
        logger.exception("delivery.attempted")
    assert "redox.test did not answer within 60 s" in output()


def test_an_exception_type_can_declare_its_messages_safe(captured):
    class ParseRefused(Exception):
        log_safe_message = True

    logger, output = captured
    try:
        raise ParseRefused("Order.ID is missing")
    except ParseRefused:
        logger.exception("message.failed")
    assert "Order.ID is missing" in output()


def test_a_traceback_cached_by_another_formatter_is_reduced_to_frames(captured):
    logger, output = captured
    try:
        int(MRN)
    except ValueError:
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_text = logging.Formatter().formatException(__import__("sys").exc_info())
        assert "MRN0048213" in record.exc_text
    logger.handle(record)
    text = output()
    assert "MRN0048213" not in text
    assert "ValueError" in text


def test_sql_statements_are_logged_without_their_text(captured):
    logger, output = captured
    sql_logger = logging.getLogger("django.db.backends")
    sql_logger.handlers, saved = logger.handlers, sql_logger.handlers
    sql_logger.propagate, saved_propagate = False, sql_logger.propagate
    sql_logger.setLevel(logging.DEBUG)
    try:
        sql_logger.debug(
            "(%.3f) %s; args=%s; alias=%s",
            0.001,
            "SELECT * FROM orders_order WHERE patient_last_name = 'Samplepatient'",
            ("Samplepatient",),
            "default",
            extra={"duration": 0.001, "sql": "SELECT ... 'Samplepatient'", "params": ("Samplepatient",)},
        )
    finally:
        sql_logger.handlers = saved
        sql_logger.propagate = saved_propagate
        sql_logger.setLevel(logging.NOTSET)
    text = output()
    assert "Samplepatient" not in text
    assert "SQL statement" in text


def test_request_lines_lose_their_query_string(captured):
    logger, output = captured
    server_logger = logging.getLogger("django.server")
    saved, saved_propagate = server_logger.handlers, server_logger.propagate
    server_logger.handlers, server_logger.propagate = logger.handlers, False
    try:
        server_logger.warning('"%s" %s %s', "GET /?q=Samplepatient HTTP/1.1", "400", "12")
    finally:
        server_logger.handlers, server_logger.propagate = saved, saved_propagate
    text = output()
    assert "Samplepatient" not in text
    assert "GET /?[query withheld] HTTP/1.1" in text


def test_bytes_are_logged_as_their_length(captured):
    logger, output = captured
    logger.info("stored %s", PAYLOAD.encode(), extra={"raw_body": PAYLOAD.encode(), "blob": b"%PDF-1.4"})
    text = output()
    assert "Samplepatient" not in text
    assert f"<{len(PAYLOAD.encode())} bytes>" in text
    assert "<8 bytes>" in text


def test_plain_lines_are_readable():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PlainFormatter())
    record = logging.makeLogRecord(
        {"name": "orders.ingest", "levelno": logging.INFO, "levelname": "INFO", "msg": "order.created"}
    )
    record.event = "order.created"
    record.order_id = 7
    record.request_id = "abc123def456"
    handler.handle(record)
    line = stream.getvalue().strip()
    assert line.endswith("INFO orders.ingest order.created order_id=7 request_id=abc123def456")


def test_yes_no_values_are_kept_even_under_a_sensitive_looking_key(captured):
    logger, output = captured
    logger.warning("webhook.auth_failed", extra={"token_present": False, "token": "secret-token-value"})
    text = output()
    assert "secret-token-value" not in text
    assert "token_present" in text and ("false" in text or "False" in text)


def test_a_4xx_logged_after_the_request_finished_keeps_its_request_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PhiFilter())
    request = type("Request", (), {"request_id": "req-after-the-fact", "path": "/?q=Samplepatient"})()
    record = logging.makeLogRecord(
        {"name": "django.request", "levelno": 30, "levelname": "WARNING", "msg": "Unauthorized: /redox/webhook/"}
    )
    record.request = request
    record.status_code = 401
    handler.handle(record)
    line = json.loads(stream.getvalue())
    assert line["request_id"] == "req-after-the-fact"
    assert line["request"] == "[redacted]"
