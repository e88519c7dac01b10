"""Cross-site request forgery: every form carries a token tied to the browser's session,
and every POST to the pages is checked before its handler runs.

The token is an HMAC of the session cookie (or, before sign-in, of the `rollon_presign`
cookie), so it changes with each sign-in, needs no storage, and another site, which can
neither read those cookies nor compute the HMAC, cannot produce it. A POST whose `Origin`
header names another site is refused as well (defence in depth with SameSite=Lax).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from rollon.api.web.session import (
    PRESIGN_COOKIE,
    SESSION_COOKIE,
    mac,
    read_session,
    valid_presign_nonce,
)

CSRF_FIELD: Final = "csrf_token"


def session_csrf_token(key: bytes, session_cookie: str) -> str:
    return mac(key, "csrf session", session_cookie)


def presign_csrf_token(key: bytes, nonce: str) -> str:
    return mac(key, "csrf presign", nonce)


def expected_tokens(key: bytes, cookies: Mapping[str, str]) -> list[str]:
    """The tokens a form posted by this browser may carry."""
    tokens = []
    session_cookie = cookies.get(SESSION_COOKIE)
    if session_cookie is not None and read_session(key, session_cookie) is not None:
        tokens.append(session_csrf_token(key, session_cookie))
    nonce = cookies.get(PRESIGN_COOKIE)
    if valid_presign_nonce(nonce):
        assert nonce is not None
        tokens.append(presign_csrf_token(key, nonce))
    return tokens


def token_matches(key: bytes, cookies: Mapping[str, str], submitted: str | None) -> bool:
    """True when `submitted` is a token this browser's cookies vouch for."""
    if not submitted or len(submitted) > 64:
        return False
    # Compare against every candidate, so the time taken does not say which one matched.
    matches = [hmac.compare_digest(submitted, token) for token in expected_tokens(key, cookies)]
    return any(matches)


def same_origin(origin: str | None, host: str | None) -> bool:
    """False only when the browser says the POST comes from another site."""
    if origin is None:
        return True  # older browsers and privacy settings send none: the token decides
    if origin == "null" or host is None:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()
