"""A tiny OpenID Connect provider for tests, on 127.0.0.1: discovery, authorize, token,
userinfo and JWKS, with RS256 ID tokens. Whoever is `next_user` signs in at /authorize,
at once (no page): the tests decide the claims, including `amr` and groups.

    with FakeIdp(client_id="hcoint", client_secret="s3cret") as idp:
        idp.next_user = {"sub": "u1", "email": "ann@example.org", "email_verified": True}
        ... settings.SOCIALACCOUNT_PROVIDERS = idp.allauth_providers()
"""

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def _b64(number):
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class FakeIdp:
    def __init__(self, client_id="hcoint-test", client_secret="hcoint-test-secret"):  # noqa: S107
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key"
        self.next_user = {}
        self.codes = {}
        self.token_requests = []
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, body, status=200):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    return self._json(idp.discovery())
                if url.path == "/jwks":
                    public = idp.key.public_key().public_numbers()
                    key = {"kty": "RSA", "kid": idp.kid, "use": "sig", "alg": "RS256"}
                    return self._json({"keys": [{**key, "n": _b64(public.n), "e": _b64(public.e)}]})
                if url.path == "/authorize":
                    code = secrets.token_urlsafe(16)
                    idp.codes[code] = {"claims": dict(idp.next_user), "nonce": query.get("nonce")}
                    self.send_response(302)
                    params = {"code": code, "state": query.get("state", "")}
                    self.send_header("Location", f"{query['redirect_uri']}?{urlencode(params)}")
                    self.end_headers()
                    return None
                if url.path == "/userinfo":
                    return self._json(idp.last_claims)
                return self._json({"error": "not_found"}, 404)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                idp.token_requests.append(form)
                grant = idp.codes.pop(form.get("code"), None)
                if (
                    urlsplit(self.path).path != "/token"
                    or grant is None
                    or form.get("client_id") != idp.client_id
                    or form.get("client_secret") != idp.client_secret
                ):
                    return self._json({"error": "invalid_grant"}, 400)
                idp.last_claims = grant["claims"]
                return self._json(
                    {
                        "access_token": secrets.token_urlsafe(16),
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": idp.id_token(grant["claims"], grant["nonce"]),
                    }
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.last_claims = {}

    def discovery(self):
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }

    def id_token(self, claims, nonce=None):
        now = int(time.time())
        body = {"iss": self.issuer, "aud": self.client_id, "iat": now, "exp": now + 300, **claims}
        if nonce:
            body["nonce"] = nonce
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})

    def allauth_settings(self, settings):
        """Point a pytest-django `settings` fixture at this provider, as the OIDC_* variables would."""
        settings.OIDC_ENABLED = True
        directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
        settings.CONTENT_SECURITY_POLICY = {
            **settings.CONTENT_SECURITY_POLICY,
            "DIRECTIVES": {**directives, "form-action": [*directives["form-action"], self.issuer]},
        }
        settings.SOCIALACCOUNT_PROVIDERS = {
            "openid_connect": {
                **settings.SOCIALACCOUNT_PROVIDERS["openid_connect"],
                "APPS": [
                    {
                        "provider_id": "company",
                        "name": "Test IdP",
                        "client_id": self.client_id,
                        "secret": self.client_secret,
                        "settings": {"server_url": self.issuer, "token_auth_method": "client_secret_post"},
                    }
                ],
            }
        }

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
