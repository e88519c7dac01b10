"""The page session: which token a browser signed in with, kept in a cookie.

Decision: the `rollon_session` cookie holds the bearer token itself, with the time of
sign-in and an HMAC over both; the server keeps no session table and stores no token in
clear (the token table holds only each token's SHA-256, as for the API).

Why: every page request goes through the API's own `Authenticator` (the same hash lookup,
cache, failed-login limiter), so revoking a token ends its page sessions at once, in every
process, across restarts, with no new table to migrate or to purge. The signed sign-in time
lets the server end a session after `SESSION_MAX_AGE_S` whatever the browser does with the
cookie. The cookie is as sensitive as the token, so it is HttpOnly (scripts never see it),
SameSite=Lax (cross-site POSTs do not carry it), Secure over https and scoped to `/`.
Signing out clears the cookie; to end a token everywhere, an admin revokes it.

Before sign-in, a random `rollon_presign` cookie anchors the sign-in form's CSRF token (so
that another site cannot sign a browser into someone else's account).

Keys: one HMAC key for the web pages, derived from the service's Ed25519 signing key (so
every process of a deployment shares it and it survives restarts), under its own label.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SESSION_COOKIE: Final = "rollon_session"
PRESIGN_COOKIE: Final = "rollon_presign"
SESSION_MAX_AGE_S: Final = 12 * 3600  # a working day at the till
PRESIGN_MAX_AGE_S: Final = 3600
MAC_BYTES: Final = 16
NONCE_BYTES: Final = 16
MAX_COOKIE_CHARS: Final = 400  # a token is 47 characters; anything much longer is not ours
_KEY_LABEL: Final = b"rollon web pages v1"


def web_key(signing_key: Ed25519PrivateKey) -> bytes:
    """The pages' HMAC key, derived from the service's signing key."""
    raw = signing_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return hmac.new(raw, _KEY_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mac(key: bytes, purpose: str, *parts: str) -> str:
    """A short HMAC of `parts` for one purpose, URL-safe."""
    message = "\0".join((purpose, *parts)).encode("utf-8", "surrogateescape")
    return _b64(hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES])


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: its token (the secret) and when it signed in."""

    token: str
    signed_in_at_s: int


def session_cookie(key: bytes, token: str, now_s: int) -> str:
    """The cookie value for a browser that just signed in with `token`."""
    assert "." not in str(now_s)
    return f"{now_s}.{mac(key, 'session', str(now_s), token)}.{token}"


def read_session(
    key: bytes, cookie: str | None, clock_s: Callable[[], float] = time.time
) -> Session | None:
    """The session a cookie holds, None if absent, forged, malformed or expired."""
    if cookie is None or len(cookie) > MAX_COOKIE_CHARS:
        return None
    parts = cookie.split(".", 2)
    if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit():
        return None
    issued_text, given_mac, token = parts
    if not hmac.compare_digest(given_mac, mac(key, "session", issued_text, token)):
        return None
    issued_s = int(issued_text)
    age_s = clock_s() - issued_s
    if not 0 <= age_s <= SESSION_MAX_AGE_S:
        return None
    return Session(token=token, signed_in_at_s=issued_s)


def new_presign_nonce() -> str:
    return _b64(secrets.token_bytes(NONCE_BYTES))


def valid_presign_nonce(nonce: str | None) -> bool:
    """True for a value `new_presign_nonce` could have made."""
    return (
        nonce is not None
        and 0 < len(nonce) <= 64
        and nonce.replace("-", "").replace("_", "").isalnum()
        and nonce.isascii()
    )
