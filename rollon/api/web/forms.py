"""Reading a posted form: each field checked, each problem kept as a sentence for the field
it belongs to, so the page is shown again with the visitor's input and the reasons.

Amounts are typed the French way ("12,50") and parsed by `rollon.ledger.money.parse_amount`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from typing import Final
from uuid import UUID

from starlette.datastructures import FormData, QueryParams

from rollon.api.web.i18n import Translator
from rollon.ledger.money import AmountError, parse_amount

MAX_FIELD_CHARS: Final = 4_000  # the longest field we take (a pasted QR payload is ~300)


@dataclass(slots=True)
class Form:
    """A posted form: its raw values (to fill the form again) and the errors per field."""

    t: Translator
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, t: Translator, data: FormData | QueryParams) -> Form:
        """A posted form, or the query of a GET form (searches, downloads)."""
        values = {
            name: value[:MAX_FIELD_CHARS] for name, value in data.items() if isinstance(value, str)
        }
        return cls(t, values)

    @property
    def ok(self) -> bool:
        return not self.errors

    def fail(self, name: str, message: str) -> None:
        """Record a problem with a field (the first one per field is shown)."""
        self.errors.setdefault(name, message)

    def raw(self, name: str) -> str:
        return self.values.get(name, "").strip()

    def text(self, name: str, *, max_chars: int, required: bool = True) -> str:
        value = self.raw(name)
        if required and not value:
            self.fail(name, self.t("error.required"))
        elif len(value) > max_chars:
            self.fail(name, self.t("error.too_long", max=max_chars))
        return value

    def amount(self, name: str) -> int:
        """Centimes from "12,50"; 0 (with an error recorded) when it is not an amount."""
        value = self.raw(name)
        if not value:
            self.fail(name, self.t("error.required"))
            return 0
        try:
            return parse_amount(value)
        except AmountError as error:
            self.fail(name, self.t.error(error.code, str(error)))
            return 0

    def account_id(self, name: str, *, required: bool = True) -> UUID | None:
        """An account number, with or without dashes; None if empty or wrong."""
        value = self.raw(name)
        if not value:
            if required:
                self.fail(name, self.t("error.required"))
            return None
        try:
            return UUID(value)
        except ValueError:
            self.fail(name, self.t("error.bad_account_id"))
            return None

    def operation_id(self, name: str = "operation_id") -> UUID | None:
        """The id a form was given when shown, which makes a double submit harmless."""
        try:
            return UUID(self.raw(name))
        except ValueError:
            self.fail(name, self.t("error.bad_request"))
            return None

    def choice(self, name: str, options: Collection[str]) -> str:
        value = self.raw(name)
        if value not in options:
            self.fail(name, self.t("error.bad_choice"))
        return value

    def day(self, name: str) -> date | None:
        """An optional date, YYYY-MM-DD (what <input type=date> sends)."""
        value = self.raw(name)
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(name, self.t("error.bad_date"))
            return None
