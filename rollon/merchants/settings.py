"""What the merchants layer is configured with: the reconversion fee, request lifetimes and
the guarantee fund's bank account that payouts leave from.

| variable | default | meaning |
| --- | --- | --- |
| ROLLON_FUND_NAME | Association Rollon | debtor name in payout files |
| ROLLON_FUND_IBAN | (none: payout files cannot be made) | the guarantee fund's IBAN |
| ROLLON_FUND_BIC | (none) | its BIC, if the bank wants one |
| ROLLON_REQUEST_TTL_S | 300 | default lifetime of a payment request |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from rollon.merchants.iban import IbanError, validate_iban
from rollon.merchants.payload import MAX_VALIDITY_S

DEFAULT_FEE_BPS = 300
DEFAULT_REQUEST_TTL_S = 300
DEFAULT_FUND_NAME = "Association Rollon"


class MerchantSettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


@dataclass(frozen=True, slots=True)
class MerchantSettings:
    reconversion_fee_bps: int = DEFAULT_FEE_BPS
    request_ttl_s: int = DEFAULT_REQUEST_TTL_S
    fund_name: str = DEFAULT_FUND_NAME
    fund_iban: str | None = None
    fund_bic: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.reconversion_fee_bps <= 10_000:
            raise MerchantSettingsError("the reconversion fee is 0 to 10000 basis points")
        if not 0 < self.request_ttl_s <= MAX_VALIDITY_S:
            raise MerchantSettingsError(f"a request lives 1 to {MAX_VALIDITY_S} seconds")
        if self.fund_iban is not None:
            try:
                validate_iban(self.fund_iban)
            except IbanError as error:
                raise MerchantSettingsError(f"ROLLON_FUND_IBAN: {error}") from None

    @classmethod
    def from_env(cls, fee_bps: int, environ: Mapping[str, str] | None = None) -> MerchantSettings:
        """Read ROLLON_FUND_* and ROLLON_REQUEST_TTL_S; the fee comes from the service's
        own settings, which own ROLLON_FEE_BPS."""
        env = os.environ if environ is None else environ
        ttl_text = env.get("ROLLON_REQUEST_TTL_S", str(DEFAULT_REQUEST_TTL_S))
        try:
            ttl_s = int(ttl_text)
        except ValueError:
            raise MerchantSettingsError(
                f"ROLLON_REQUEST_TTL_S: {ttl_text!r} is no number"
            ) from None
        return cls(
            reconversion_fee_bps=fee_bps,
            request_ttl_s=ttl_s,
            fund_name=env.get("ROLLON_FUND_NAME", DEFAULT_FUND_NAME),
            fund_iban=env.get("ROLLON_FUND_IBAN") or None,
            fund_bic=env.get("ROLLON_FUND_BIC") or None,
        )
