"""Redox's destination verification: the token compare and the one-off challenge.

When a destination is saved, Redox proves the endpoint is ours by sending a
`challenge` with the `verification-token` we invented, and expects the challenge
back. POST (the default) carries both in a JSON body; GET carries them as query
parameters, and the token may also come in the `verification-token` header.
https://docs.redoxengine.com/how-to-use-redox/manage-your-redox-configuration/create-and-verify-an-endpoint/

Plain values in, plain values out: this module knows nothing of partners or requests.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard

TOKEN_HEADER = "verification-token"  # noqa: S105 - a header name, not a secret
# A verification body is two short strings. Anything bigger is a message, and an
# unauthenticated body that large is not worth parsing.
CHALLENGE_BODY_MAX_BYTES = 4096
# Redox's challenges are UUID-like; the cap keeps us from echoing arbitrary blobs.
CHALLENGE_MAX_CHARS = 256
CHALLENGE_KEY = b'"challenge"'


@dataclass(frozen=True)
class Challenge:
    """A verification request: the challenge to echo and the token it came with ("" if none)."""

    challenge: str
    token: str


def _usable(challenge: object) -> TypeGuard[str]:
    return isinstance(challenge, str) and 0 < len(challenge) <= CHALLENGE_MAX_CHARS


def challenge_from_query(query: Mapping[str, str], header_token: str = "") -> Challenge | None:
    """The GET form: `?challenge=...&verification-token=...`, token also accepted from the header.

    `query` is any mapping with `.get` (a Django QueryDict works). Returns None when
    there is no usable challenge.
    """
    challenge = query.get("challenge")
    if not _usable(challenge):
        return None
    token = query.get(TOKEN_HEADER) or header_token or ""
    return Challenge(challenge=challenge, token=token)


def may_be_challenge(body: bytes) -> bool:
    """Whether `body` could be a POST challenge (`challenge_from_body`), told without decoding it."""
    return bool(body) and len(body) <= CHALLENGE_BODY_MAX_BYTES and CHALLENGE_KEY in body


def challenge_from_body(body: bytes, header_token: str = "") -> Challenge | None:
    """The POST form: a small JSON object with `challenge` and `verification-token`.

    Returns None for anything else, including every data-model message (they carry
    `Meta`), so the caller can treat the body as a message.

    A body without the bytes `"challenge"` is not decoded at all: the webhook asks this of
    every small delivery, which orders/ingest.py decodes anyway. Redox writes the key
    plainly (redox/samples/challenge-post.json); a key spelled with JSON escapes is not
    taken for a challenge.
    """
    if not may_be_challenge(body):
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or "Meta" in data:
        return None
    challenge = data.get("challenge")
    if not _usable(challenge):
        return None
    token = data.get(TOKEN_HEADER)
    if not isinstance(token, str) or not token:
        token = header_token or ""
    return Challenge(challenge=challenge, token=token)


# We invent the token and type it into Redox's dashboard; it is the only thing
# that tells a partner's messages from anyone else's, so it must not be guessable.
MIN_TOKEN_CHARS = 16


def token_problem(token: str) -> str | None:
    """Why `token` is unfit to be a verification token, or None when it is fine."""
    if not token or len(token) < MIN_TOKEN_CHARS:
        return f"A verification token needs at least {MIN_TOKEN_CHARS} characters."
    if token != token.strip() or any(c.isspace() for c in token):
        return "A verification token cannot contain spaces."
    if not token.isprintable() or not token.isascii():
        return "A verification token can only contain printable ASCII characters."
    return None
