"""The shapes of what the sandbox reads and answers: request bodies (JSON, multipart) and
Redox-style error bodies."""

import email.parser
import email.policy
import json
import uuid
from datetime import UTC, datetime
from typing import Any, TypeGuard


def redox_errors(texts: list[str], data_model: object = None, event_type: object = None) -> dict[str, Any]:
    """An error body shaped like Redox's: Meta.Errors[{ID, Text, Type, Module}]."""
    return {
        "Meta": {
            "DataModel": data_model,
            "EventType": event_type,
            "Errors": [
                {"ID": index, "Text": text, "Type": "message", "Module": "Sandbox"}
                for index, text in enumerate(texts, start=1)
            ],
        }
    }


def json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def nonempty_str(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def message_ids(message: object) -> dict[str, str]:
    """Order id and our delivery reference, to list without showing the body."""
    if not isinstance(message, dict):
        return {}
    orders = message.get("Orders")
    first = orders[0] if isinstance(orders, list) and orders and isinstance(orders[0], dict) else {}
    note = message.get("Note")
    if not isinstance(note, dict):
        note = {}
    return {
        "order_id": str(first.get("ID") or ""),
        "delivery_ref": str(first.get("ApplicationOrderID") or note.get("DocumentID") or ""),
    }


def multipart_file(content_type: str, body: bytes) -> bytes | None:
    """The bytes of the `file` field of a multipart/form-data body, or None."""
    if not content_type.startswith("multipart/form-data"):
        return None
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


def platform_log_body(log_id: str, status: str) -> dict[str, Any]:
    """The Platform API's "Get log by id" answer, with only what HCOINT reads: the latest
    attempt's status (docs/redox.md)."""
    return {
        "meta": {"version": "1.0.0"},
        "payload": {
            "result": {
                "id": log_id,
                "attempts": {
                    "total": 1,
                    "latest": {
                        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, log_id)),
                        "attemptAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                        "status": status,
                    },
                },
            }
        },
    }
