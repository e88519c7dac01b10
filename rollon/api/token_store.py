"""Bearer tokens: random secrets shown once, stored only as SHA-256 hashes, revocable.

A token is `rln_` followed by 43 URL-safe characters (256 random bits). Its role says what it
may do; member, merchant and operator tokens are tied to the one account they act for.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rollon.api.schema import MAX_TOKEN_NAME_LENGTH, api_tokens
from rollon.ledger.accounts import AccountKind
from rollon.ledger.queries import get_account
from rollon.ledger.storage import AnyRow, write_transaction

TOKEN_PREFIX = "rln_"  # noqa: S105  (a visible prefix, not a secret)
SECRET_BYTES = 32
MAX_SECRET_LENGTH = 128  # longer "tokens" are refused before hashing


class Role(StrEnum):
    ADMIN = "admin"  # the association: accounts, tokens, issuance
    OPERATOR = "operator"  # an exchange point: issues RolloN, nothing else
    MERCHANT = "merchant"  # its own account and payment requests
    MEMBER = "member"  # its own account: balance, history, payments
    AUDITOR = "auditor"  # reads everything, writes nothing


# Which kind of account a token of each role acts for (None: no account).
ROLE_ACCOUNT_KIND: dict[Role, AccountKind | None] = {
    Role.ADMIN: None,
    Role.AUDITOR: None,
    Role.OPERATOR: AccountKind.EXCHANGE_POINT,
    Role.MERCHANT: AccountKind.MERCHANT,
    Role.MEMBER: AccountKind.MEMBER,
}


class TokenError(ValueError):
    """A token that cannot be created as asked; `code` is stable for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as stored: everything but its secret."""

    id: UUID
    role: Role
    account_id: UUID | None
    name: str
    created_at_ns: int
    revoked_at_ns: int | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at_ns is not None


def secret_sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def _record(row: AnyRow) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        role=Role(row.role),
        account_id=row.account_id,
        name=row.name,
        created_at_ns=row.created_at_ns,
        revoked_at_ns=row.revoked_at_ns,
    )


_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.role,
    api_tokens.c.account_id,
    api_tokens.c.name,
    api_tokens.c.created_at_ns,
    api_tokens.c.revoked_at_ns,
)


def create_token(
    engine: Engine,
    role: Role,
    account_id: UUID | None,
    name: str,
    clock_ns: Callable[[], int] = time.time_ns,
) -> tuple[TokenRecord, str]:
    """Create a token; returns its record and its secret, which is never stored or shown
    again. Member, merchant and operator tokens need an open account of the matching kind;
    admin and auditor tokens take none."""
    name = name.strip()
    if not 0 < len(name) <= MAX_TOKEN_NAME_LENGTH:
        raise TokenError("invalid_name", f"a name has 1 to {MAX_TOKEN_NAME_LENGTH} characters")
    kind = ROLE_ACCOUNT_KIND[role]
    secret = TOKEN_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    record = TokenRecord(uuid4(), role, account_id, name, clock_ns(), None)
    with write_transaction(engine) as connection:
        if kind is None and account_id is not None:
            raise TokenError("account_not_allowed", f"{role} tokens act for no account")
        if kind is not None:
            if account_id is None:
                raise TokenError("account_required", f"{role} tokens need an account_id")
            account = get_account(connection, account_id)
            if account is None:
                raise TokenError("account_not_found", f"no account {account_id}")
            if account.kind is not kind:
                raise TokenError(
                    "account_kind_mismatch",
                    f"{role} tokens act for a {kind} account; {account_id} is a {account.kind}",
                )
            if account.closed:
                raise TokenError("account_closed", f"account {account_id} is closed")
        connection.execute(
            api_tokens.insert().values(
                id=record.id,
                secret_sha256=secret_sha256(secret),
                role=role.value,
                account_id=account_id,
                name=name,
                created_at_ns=record.created_at_ns,
            )
        )
    return record, secret


def find_token(connection: Connection, secret: str) -> TokenRecord | None:
    """The live (not revoked) token with this secret, if any."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        return None
    row = connection.execute(
        sa.select(*_COLUMNS).where(
            api_tokens.c.secret_sha256 == secret_sha256(secret),
            api_tokens.c.revoked_at_ns.is_(None),
        )
    ).first()
    return None if row is None else _record(row)


def get_token(connection: Connection, token_id: UUID) -> TokenRecord | None:
    row = connection.execute(sa.select(*_COLUMNS).where(api_tokens.c.id == token_id)).first()
    return None if row is None else _record(row)


def revoke_token(
    engine: Engine, token_id: UUID, clock_ns: Callable[[], int] = time.time_ns
) -> TokenRecord | None:
    """Revoke a token for good; revoking twice keeps the first time. None if unknown."""
    with write_transaction(engine) as connection:
        connection.execute(
            api_tokens.update()
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at_ns.is_(None))
            .values(revoked_at_ns=clock_ns())
        )
        return get_token(connection, token_id)


def revoke_tokens_named(
    engine: Engine, prefix: str, clock_ns: Callable[[], int] = time.time_ns
) -> int:
    """Revoke every live token whose name starts with `prefix`; returns how many."""
    assert prefix, "an empty prefix would revoke every token"
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    with write_transaction(engine) as connection:
        result = connection.execute(
            api_tokens.update()
            .where(
                api_tokens.c.name.like(escaped + "%", escape="\\"),
                api_tokens.c.revoked_at_ns.is_(None),
            )
            .values(revoked_at_ns=clock_ns())
        )
        return result.rowcount
