"""A fake Redox on localhost, for development, demos and end-to-end tests.

    python manage.py redox_sandbox [--port 8001] [--host 127.0.0.1]

No database: it keeps what it received in memory (`state.py`). It serves (`server.py`)
- both auth flows: `/auth/authenticate` + `/auth/refreshToken` (legacy API key) and
  `/v2/auth/token` (OAuth 2.0 client credentials with a signed JWT). Any well-formed
  credentials are accepted; a JWT's header must name `kid` and an RS384/ES384 `alg`, and
  its claims must look right, but its signature is not checked (there is no key);
- `/endpoint`, which wants a Bearer token from those flows, checks the message against
  `redox/schemas/` and the fields HCOINT promises (docs/redox.md Part 1; `validation.py`),
  and answers 400 with Redox-style `Meta.Errors`, or 200 with `Meta.Logs[{ID, AttemptID}]`;
- `/upload`, the blob upload (multipart field `file`), answering 201 `{"URI": ...}`.

A person (or a test) can make it misbehave from the page at `/` (plain forms; `page.py`,
`templates/sandbox.html`) or with JSON under `/_sandbox/`: fail the next N calls with
500/429/502/503/504, reject the next N (or all) messages with 400 and a chosen text,
expire every token, clear, list. Failures apply to `/endpoint` and `/upload`, never to
the auth calls, so "fail 3" means three visibly failed deliveries.

Tests start one in a thread with `tests/sandbox_server.py`.
"""
