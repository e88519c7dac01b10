"""Everything the merchants layer offers, built once per process around one Ledger."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from rollon.ledger.service import Ledger
from rollon.merchants.batch_writer import BatchWriter
from rollon.merchants.directory import MerchantDirectory
from rollon.merchants.keyring import Keyring
from rollon.merchants.notifier import RequestNotifier
from rollon.merchants.reconversions import Reconversions
from rollon.merchants.refunds import Refunds
from rollon.merchants.requests import PaymentRequests
from rollon.merchants.settings import MerchantSettings


class Merchants:
    """The directory, payment requests, refunds and reconversions, sharing one notifier
    (so a payment wakes the tills waiting in this process), one keyring and one writer
    that puts the frequent small writes in the ledger's own batches (closing the Ledger
    commits what is queued)."""

    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        settings: MerchantSettings,
        *,
        keyring: Keyring | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if keyring is None:
            if ledger.signing_key is None:
                raise ValueError("QR payloads need a signing key: give the Ledger one")
            keyring = Keyring(ledger.signing_key)
        self.settings = settings
        self.keyring = keyring
        self.notifier = RequestNotifier()
        self.directory = MerchantDirectory(engine, ledger, clock_ns)
        self.requests = PaymentRequests(
            engine,
            ledger,
            self.directory,
            keyring,
            self.notifier,
            BatchWriter(ledger),
            request_ttl_s=settings.request_ttl_s,
            clock_ns=clock_ns,
        )
        self.refunds = Refunds(engine, ledger, self.requests, clock_ns)
        self.reconversions = Reconversions(engine, ledger, self.directory, settings, clock_ns)
