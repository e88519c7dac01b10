"""The one error the merchants layer raises: a stable `code`, a message for people, and
what kind of refusal it is, so the HTTP layer can choose a status without knowing every
code."""

from __future__ import annotations

from enum import StrEnum

from rollon.ledger.transfers import Result


class Refusal(StrEnum):
    INVALID = "invalid"  # the input can never succeed as given
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"  # the caller may not act on this
    CONFLICT = "conflict"  # the state does not allow it (already paid, cancelled, ...)
    GONE = "gone"  # expired
    BUSY = "busy"  # lost a race too many times in a row; retrying is safe


class MerchantError(ValueError):
    """A refused merchant operation. `result` is set when the ledger itself refused."""

    def __init__(
        self, code: str, message: str, refusal: Refusal, result: Result | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.refusal = refusal
        self.result = result

    @classmethod
    def from_result(cls, result: Result, message: str) -> MerchantError:
        """The ledger's own refusal, under its own code."""
        refusal = Refusal.NOT_FOUND if result is Result.ACCOUNT_NOT_FOUND else Refusal.CONFLICT
        if result in (Result.INSUFFICIENT_FUNDS, Result.SAME_ACCOUNT, Result.LEDGER_MISMATCH):
            refusal = Refusal.INVALID
        return cls(result.value, message, refusal, result)
