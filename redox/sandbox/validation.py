"""What the sandbox checks before it accepts a call: messages against Redox's schemas and
the fields HCOINT promises (docs/redox.md Part 1), and the shape of a JWT client assertion.

Errors are paths and fixed sentences, never values: a message carries patient data.
"""

import base64
import binascii
import json
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMAS = {"Results": "results/new.json", "Notes": "notes/new.json"}
JWT_ALGORITHMS = ("RS384", "ES384")

_JSON_TYPES: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def schema_errors(instance: object, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Errors of `instance` against a Redox schema, as paths (never values: they are PHI).

    Redox's published draft-04 schemas use only `type`, `properties`, `items` and
    `required`, which is all this checks; the tests hold it to the `jsonschema` package.
    """
    types = schema.get("type")
    if types:
        allowed = [types] if isinstance(types, str) else types
        if not any(_JSON_TYPES[name](instance) for name in allowed):
            return [f"{path} must be {' or '.join(allowed)}"]
    errors: list[str] = []
    if isinstance(instance, dict):
        for name in schema.get("required", ()):
            if name not in instance:
                errors.append(f"{path}.{name} is required")
        for name, subschema in schema.get("properties", {}).items():
            if name in instance:
                errors.extend(schema_errors(instance[name], subschema, f"{path}.{name}"))
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(instance):
            errors.extend(schema_errors(item, schema["items"], f"{path}[{index}]"))
    return errors


_schema_cache: dict[str, dict[str, Any]] = {}


def load_schema(data_model: str) -> dict[str, Any]:
    if data_model not in _schema_cache:
        _schema_cache[data_model] = json.loads((SCHEMA_DIR / SCHEMAS[data_model]).read_text())
    return _schema_cache[data_model]


def message_errors(message: object, *, known_blobs: Collection[str] = ()) -> list[str]:
    """Why Redox (as HCOINT uses it) would refuse `message`; empty when it is acceptable."""
    if not isinstance(message, dict):
        return ["The body must be a JSON object"]
    meta = message.get("Meta")
    if not isinstance(meta, dict):
        meta = {}
    data_model = meta.get("DataModel")
    if data_model not in SCHEMAS:
        return [f"Meta.DataModel must be one of {', '.join(SCHEMAS)}"]
    if meta.get("EventType") != "New":
        return ["Meta.EventType must be New"]
    errors = schema_errors(message, load_schema(data_model))
    if errors:
        return errors
    destinations = meta.get("Destinations") or []
    if not destinations or not all(isinstance(d, dict) and d.get("ID") for d in destinations):
        errors.append("No subscriptions: Meta.Destinations needs to contain a destination from existing subscriptions")
    orders = message.get("Orders") or []
    if not orders or not isinstance(orders[0], dict) or not orders[0].get("ID"):
        errors.append("Orders[0].ID (the EHR order id) is required")
    if data_model == "Results" and orders and isinstance(orders[0], dict):
        results = orders[0].get("Results") or []
        if not results:
            errors.append("Orders[0].Results must hold the note")
        for index, result in enumerate(results):
            where = f"Orders[0].Results[{index}]"
            for name in ("Code", "Value", "ValueType", "Status"):
                if not result.get(name):
                    errors.append(f"{where}.{name} must not be empty")
            if result.get("ValueType") == "Encapsulated Data":
                if not result.get("FileType"):
                    errors.append(f"{where}.FileType is required for Encapsulated Data")
                errors.extend(_file_errors(result.get("Value"), f"{where}.Value", known_blobs))
    if data_model == "Notes":
        note = message.get("Note") or {}
        if note.get("ContentType") != "Base64 Encoded":
            errors.append('Note.ContentType must be "Base64 Encoded"')
        errors.extend(_file_errors(note.get("FileContents"), "Note.FileContents", known_blobs))
    return errors


def _file_errors(value: object, where: str, known_blobs: Collection[str]) -> list[str]:
    if not value or not isinstance(value, str):
        return [f"{where} must hold the file"]
    if value.startswith(("http://", "https://")):
        if value not in known_blobs:
            return [f"{where} is not a blob URI this source uploaded"]
        return []
    try:
        content = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return [f"{where} is neither base64 nor a blob URI"]
    if not content.startswith(b"%PDF-"):
        return [f"{where} is not a PDF"]
    return []


def jwt_errors(assertion: str, *, token_url: str, now: float) -> list[str]:
    """Why a client assertion is malformed (the signature is not checked: no key here)."""
    try:
        header_part, claims_part, signature = assertion.split(".")
        header = json.loads(_b64url(header_part))
        claims = json.loads(_b64url(claims_part))
    except (ValueError, binascii.Error):
        return ["client_assertion is not a JWT"]
    if not isinstance(header, dict) or not isinstance(claims, dict) or not signature:
        return ["client_assertion is not a signed JWT"]
    errors = []
    if not header.get("kid"):
        errors.append("JWT header kid property is required")
    if header.get("alg") not in JWT_ALGORITHMS:
        errors.append(f"JWT header alg must be one of {', '.join(JWT_ALGORITHMS)}")
    if not claims.get("iss") or claims.get("iss") != claims.get("sub"):
        errors.append("JWT iss and sub must both be the client id")
    if claims.get("aud") != token_url:
        errors.append("JWT aud must be the token URL")
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= now:
        errors.append("JWT is expired")
    if not isinstance(claims.get("iat"), int | float) or not claims.get("jti"):
        errors.append("JWT iat and jti are required")
    return errors


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
