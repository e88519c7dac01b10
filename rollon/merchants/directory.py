"""The merchant directory: onboarding by an admin (each merchant with its RLN account in the
ledger) and the public, paginated search by city, category and name.

Searches seek an index on the folded city or category, then the folded name: the cost of a
page does not grow with the directory (the regional one lists about 2,000 merchants). A
name search is a substring match on the folded name, which at that size is one short scan.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from rollon.ledger.accounts import AccountKind
from rollon.ledger.service import AccountError, Ledger
from rollon.ledger.storage import write_transaction
from rollon.merchants.errors import MerchantError, Refusal
from rollon.merchants.folding import search_key
from rollon.merchants.iban import IbanError, validate_iban
from rollon.merchants.schema import (
    MAX_ADDRESS_LENGTH,
    MAX_CITY_LENGTH,
    MAX_NAME_LENGTH,
    merchants,
)
from rollon.merchants.siret import SiretError, validate_siret

MAX_PAGE = 100
DEFAULT_PAGE = 20
MAX_SEARCH_LENGTH = 100
MAX_CACHED_MERCHANTS = 10_000
_POSTCODE = re.compile(r"^[0-9]{5}$")


class Category(StrEnum):
    """The directory's categories, as the association sorts its merchants."""

    BAKERY = "bakery"
    GROCERY = "grocery"
    FARM_PRODUCER = "farm_producer"
    RESTAURANT = "restaurant"
    CAFE_BAR = "cafe_bar"
    CLOTHING = "clothing"
    BOOKS_CULTURE = "books_culture"
    HEALTH_WELLBEING = "health_wellbeing"
    CRAFTS = "crafts"
    HOME_GARDEN = "home_garden"
    LEISURE_TOURISM = "leisure_tourism"
    MOBILITY = "mobility"
    SERVICES = "services"
    ASSOCIATION = "association"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class MerchantApplication:
    """What an admin types to onboard a merchant."""

    legal_name: str
    trade_name: str
    siret: str
    category: str
    address: str
    postcode: str
    city: str
    iban: str


@dataclass(frozen=True, slots=True)
class Merchant:
    id: UUID
    account_id: UUID
    legal_name: str
    trade_name: str
    siret: str
    category: Category
    address: str
    postcode: str
    city: str
    iban: str
    created_at_ns: int


@dataclass(frozen=True, slots=True)
class MerchantPage:
    """One page of a search; `next_cursor` fetches the next one (None on the last page)."""

    merchants: Sequence[Merchant]
    next_cursor: str | None


def _invalid(code: str, message: str) -> MerchantError:
    return MerchantError(code, message, Refusal.INVALID)


def _text(value: str, max_length: int, code: str, what: str) -> str:
    cleaned = " ".join(value.split())
    if not 0 < len(cleaned) <= max_length:
        raise _invalid(code, f"{what} has 1 to {max_length} characters")
    return cleaned


def validate_application(application: MerchantApplication) -> MerchantApplication:
    """The application with every field checked and normalised; MerchantError otherwise."""
    try:
        siret = validate_siret(application.siret)
        iban = validate_iban(application.iban)
    except (SiretError, IbanError) as error:
        raise _invalid(error.code, str(error)) from None
    try:
        category = Category(application.category)
    except ValueError:
        known = ", ".join(c.value for c in Category)
        raise _invalid("unknown_category", f"the category is one of: {known}") from None
    postcode = application.postcode.strip()
    if _POSTCODE.match(postcode) is None:
        raise _invalid("invalid_postcode", "a French postcode has five digits")
    return MerchantApplication(
        legal_name=_text(application.legal_name, MAX_NAME_LENGTH, "invalid_name", "a name"),
        trade_name=_text(application.trade_name, MAX_NAME_LENGTH, "invalid_name", "a name"),
        siret=siret,
        category=category.value,
        address=_text(application.address, MAX_ADDRESS_LENGTH, "invalid_address", "an address"),
        postcode=postcode,
        city=_text(application.city, MAX_CITY_LENGTH, "invalid_city", "a city"),
        iban=iban,
    )


def merchant_row(
    merchant_id: UUID, account_id: UUID, clean: MerchantApplication, created_at_ns: int
) -> dict[str, Any]:
    """The directory row of a checked application, with its search keys."""
    return {
        "id": merchant_id,
        "account_id": account_id,
        **{name: getattr(clean, name) for name in MerchantApplication.__slots__},
        "created_at_ns": created_at_ns,
        "name_key": search_key(f"{clean.trade_name} {clean.legal_name}"),
        "city_key": search_key(clean.city),
    }


def _merchant(row: Any) -> Merchant:
    return Merchant(
        id=row.id,
        account_id=row.account_id,
        legal_name=row.legal_name,
        trade_name=row.trade_name,
        siret=row.siret,
        category=Category(row.category),
        address=row.address,
        postcode=row.postcode,
        city=row.city,
        iban=row.iban,
        created_at_ns=row.created_at_ns,
    )


def _encode_cursor(merchant_key: str, merchant_id: UUID) -> str:
    raw = json.dumps([merchant_key, str(merchant_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name_key, merchant_id = json.loads(raw)
        return str(name_key), UUID(merchant_id)
    except (ValueError, TypeError, binascii.Error):
        raise _invalid("invalid_cursor", "this cursor did not come from a page") from None


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class MerchantDirectory:
    """Merchants, their accounts, and the public directory."""

    def __init__(
        self, engine: Engine, ledger: Ledger, clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._clock_ns = clock_ns
        # Merchants are never edited, so an account's merchant can be remembered.
        self._by_account: OrderedDict[UUID, Merchant] = OrderedDict()
        self._lock = threading.Lock()

    def onboard(
        self,
        application: MerchantApplication,
        merchant_id: UUID | None = None,
        account_id: UUID | None = None,
    ) -> Merchant:
        """Onboard a merchant with a new RLN merchant account (with id `account_id` when
        given, as demo data does). The same `merchant_id` with the same application again
        returns the merchant (a retry)."""
        clean = validate_application(application)
        merchant_id = merchant_id or uuid4()
        earlier = self.get(merchant_id)
        if earlier is not None:
            return self._same_or_conflict(earlier, clean)
        if self._siret_taken(clean.siret):
            raise MerchantError(
                "siret_exists", f"SIRET {clean.siret} is onboarded", Refusal.CONFLICT
            )
        try:
            account = self._ledger.open_account(
                kind=AccountKind.MERCHANT, name=clean.trade_name, account_id=account_id
            )
        except AccountError as error:
            raise _invalid(error.code, str(error)) from None
        row = merchant_row(merchant_id, account.id, clean, self._clock_ns())
        try:
            with write_transaction(self._engine) as connection:
                connection.execute(merchants.insert().values(row))
        except IntegrityError:
            # Lost a race for this id or SIRET: the account just opened is empty, close it.
            self._ledger.close_account(account.id)
            earlier = self.get(merchant_id)
            if earlier is not None:
                return self._same_or_conflict(earlier, clean)
            raise MerchantError(
                "siret_exists", f"SIRET {clean.siret} is onboarded", Refusal.CONFLICT
            ) from None
        merchant = self.get(merchant_id)
        assert merchant is not None and merchant.account_id == account.id
        return merchant

    @staticmethod
    def _same_or_conflict(earlier: Merchant, clean: MerchantApplication) -> Merchant:
        if all(getattr(earlier, f) == getattr(clean, f) for f in MerchantApplication.__slots__):
            return earlier
        raise MerchantError(
            "merchant_exists", f"merchant {earlier.id} exists with other details", Refusal.CONFLICT
        )

    def _siret_taken(self, siret: str) -> bool:
        with self._engine.connect() as connection:
            row = connection.execute(sa.select(merchants.c.id).where(merchants.c.siret == siret))
            return row.first() is not None

    def get(self, merchant_id: UUID) -> Merchant | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(merchants).where(merchants.c.id == merchant_id)
            ).first()
        return None if row is None else _merchant(row)

    def by_account(self, account_id: UUID) -> Merchant | None:
        """The merchant whose RLN account this is (None if it is no merchant's)."""
        with self._lock:
            cached = self._by_account.get(account_id)
        if cached is not None:
            return cached
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(merchants).where(merchants.c.account_id == account_id)
            ).first()
        if row is None:
            return None
        merchant = _merchant(row)
        with self._lock:
            self._by_account[account_id] = merchant
            while len(self._by_account) > MAX_CACHED_MERCHANTS:
                self._by_account.popitem(last=False)
        return merchant

    def search(
        self,
        *,
        city: str | None = None,
        category: str | None = None,
        name: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> MerchantPage:
        """Merchants sorted by name, filtered by city (exact, accents and case ignored),
        category and a piece of their name; `cursor` continues a previous page."""
        if not 0 < limit <= MAX_PAGE:
            raise _invalid("invalid_limit", f"a page holds 1 to {MAX_PAGE} merchants")
        query = sa.select(merchants)
        if city is not None:
            query = query.where(merchants.c.city_key == self._term(city, "city"))
        if category is not None:
            try:
                query = query.where(merchants.c.category == Category(category).value)
            except ValueError:
                raise _invalid("unknown_category", f"no category {category!r}") from None
        if name is not None:
            pattern = _like_pattern(self._term(name, "name"))
            query = query.where(merchants.c.name_key.like(pattern, escape="\\"))
        if cursor is not None:
            after_key, after_id = _decode_cursor(cursor)
            query = query.where(
                sa.or_(
                    merchants.c.name_key > after_key,
                    sa.and_(merchants.c.name_key == after_key, merchants.c.id > after_id),
                )
            )
        query = query.order_by(merchants.c.name_key, merchants.c.id).limit(limit + 1)
        with self._engine.connect() as connection:
            rows = list(connection.execute(query))
        found = [_merchant(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = _encode_cursor(last.name_key, last.id)
        return MerchantPage(merchants=found, next_cursor=next_cursor)

    @staticmethod
    def _term(text: str, what: str) -> str:
        term = search_key(text[: MAX_SEARCH_LENGTH + 1])
        if not term or len(text) > MAX_SEARCH_LENGTH:
            raise _invalid(
                "invalid_search", f"a {what} to search has 1 to {MAX_SEARCH_LENGTH} letters"
            )
        return term
