"""The ledger as one object: accounts, the hot path, the currency's operations, checkpoints.

This is what the layers above use; it owns the hot path's writer (a thread, or a child
process: see writer_process) and the signing key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID, uuid4

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from rollon.ledger import chart, operations
from rollon.ledger.accounts import Account, AccountKind, LedgerCode
from rollon.ledger.hot_path import (
    DEFAULT_CHECKPOINT_EVERY,
    BatchObserver,
    BatchParticipant,
    GroupCommitter,
    HotPath,
)
from rollon.ledger.journal import Checkpoint, sign_checkpoint
from rollon.ledger.queries import get_account
from rollon.ledger.schema import accounts, checkpoints
from rollon.ledger.storage import initialize_head, insert_checkpoint, lock_head, write_transaction
from rollon.ledger.transfers import Result, Transfer
from rollon.ledger.writer_process import ChildSetup, WriterProcess

_Ticket = TypeVar("_Ticket")

MAX_NAME_LENGTH = 200


class AccountError(ValueError):
    """An account operation that cannot be done; `code` is stable for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class OperationResult:
    """One result for an operation, with each leg's result for those who want detail."""

    result: Result
    legs: Sequence[Result]

    @property
    def applied(self) -> bool:
        """True when the operation is in the books: now, or by an earlier identical call."""
        return self.result in (Result.OK, Result.EXISTS)


def install_chart(engine: Engine, clock_ns: Callable[[], int] = time.time_ns) -> None:
    """Create the journal head and the system accounts, if missing; safe to run twice."""
    with write_transaction(engine) as connection:
        initialize_head(connection)
        existing = set(connection.execute(sa.select(accounts.c.id)).scalars())
        rows = [
            {
                "id": system.id,
                "ledger": system.ledger.value,
                "kind": AccountKind.SYSTEM.value,
                "name": system.name,
                "no_overdraft": system.no_overdraft,
                "closed": False,
                "created_at_ns": 0,
            }
            for system in chart.SYSTEM_ACCOUNTS
            if system.id not in existing
        ]
        if rows:
            connection.execute(accounts.insert(), rows)


class Ledger:
    """The RolloN ledger: every movement of money goes through `submit` (the hot path)."""

    def __init__(
        self,
        engine: Engine,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        observer: BatchObserver | None = None,
        writer_process: ChildSetup | None = None,
    ) -> None:
        """`writer_process`: run the hot path's writer in a child process started so (see
        writer_process), for servers; its clock is then the system's. Else a thread."""
        self.engine = engine
        self.signing_key = signing_key
        self._clock_ns = clock_ns
        self.hot_path: HotPath
        if writer_process is not None:
            assert clock_ns is time.time_ns, "a writer process keeps the system's clock"
            self.hot_path = WriterProcess(
                engine,
                signing_key=signing_key,
                checkpoint_every=checkpoint_every,
                observer=observer,
                setup=writer_process,
            )
        else:
            self.hot_path = GroupCommitter(
                engine,
                signing_key=signing_key,
                clock_ns=clock_ns,
                checkpoint_every=checkpoint_every,
                observer=observer,
            )

    def close(self) -> None:
        self.hot_path.close()

    # -- accounts ---------------------------------------------------------------------------
    def open_account(
        self,
        *,
        kind: AccountKind,
        name: str,
        ledger: LedgerCode = LedgerCode.RLN,
        account_id: UUID | None = None,
    ) -> Account:
        """Open an account with a zero balance. Member, merchant and exchange-point
        accounts may never go below zero."""
        name = name.strip()
        if not 0 < len(name) <= MAX_NAME_LENGTH:
            raise AccountError("invalid_name", f"a name has 1 to {MAX_NAME_LENGTH} characters")
        if kind is AccountKind.SYSTEM:
            raise AccountError("invalid_kind", "system accounts come with the chart only")
        new_id = account_id or uuid4()
        with write_transaction(self.engine) as connection:
            if get_account(connection, new_id) is not None:
                raise AccountError("account_exists", f"account {new_id} exists already")
            connection.execute(
                accounts.insert().values(
                    id=new_id,
                    ledger=ledger.value,
                    kind=kind.value,
                    name=name,
                    no_overdraft=True,  # only system accounts may go below zero
                    closed=False,
                    created_at_ns=self._clock_ns(),
                )
            )
            account = get_account(connection, new_id)
        assert account is not None
        return account

    def close_account(self, account_id: UUID) -> Account:
        """Close an empty account: no balance, nothing held. It takes no money afterwards."""
        with write_transaction(self.engine) as connection:
            lock_head(connection)  # closing must not race a batch that pays into it
            account = get_account(connection, account_id)
            if account is None:
                raise AccountError("account_not_found", f"no account {account_id}")
            if account.kind is AccountKind.SYSTEM:
                raise AccountError("invalid_kind", "system accounts cannot be closed")
            if account.balance != 0 or account.debits_pending or account.credits_pending:
                raise AccountError("account_not_empty", "only an empty account can be closed")
            connection.execute(
                accounts.update().where(accounts.c.id == account_id).values(closed=True)
            )
            closed = get_account(connection, account_id)
        assert closed is not None
        return closed

    # -- money ------------------------------------------------------------------------------
    def submit(self, transfers: Sequence[Transfer]) -> list[Result]:
        """The hot path: one result per transfer, returned once the batch is durable."""
        return self.hot_path.submit(transfers)

    async def submit_async(self, transfers: Sequence[Transfer]) -> list[Result]:
        """The hot path from an event loop."""
        return await self.hot_path.submit_async(transfers)

    def submit_joined(
        self,
        transfers: Sequence[Transfer],
        participant: BatchParticipant[_Ticket],
        ticket: _Ticket,
        timeout_s: float = 30.0,
    ) -> tuple[list[Result], _Ticket]:
        """The hot path with a participant, whose rows commit with the transfers (see
        hot_path.BatchParticipant): the results, and the ticket as the participant left it
        (a copy when the writer runs in its own process: use the one returned)."""
        return self.hot_path.submit_joined(transfers, participant, ticket, timeout_s)

    async def submit_joined_async(
        self, transfers: Sequence[Transfer], participant: BatchParticipant[_Ticket], ticket: _Ticket
    ) -> tuple[list[Result], _Ticket]:
        """`submit_joined` from an event loop."""
        return await self.hot_path.submit_joined_async(transfers, participant, ticket)

    def issue(
        self,
        operation_id: UUID,
        account_id: UUID,
        amount: int,
        euro_reference: str,
        bonus_bps: int = 0,
        *,
        exchange_point_id: UUID | None = None,
    ) -> OperationResult:
        """Issue RolloN against euros received (and the bonus on change, if any), through the
        exchange point's account when one is named (see operations.issuance)."""
        legs = operations.issuance(
            operation_id,
            account_id,
            amount,
            euro_reference,
            bonus_bps,
            exchange_point_id=exchange_point_id,
        )
        return self._operation(legs)

    def reconvert(
        self, operation_id: UUID, merchant_account_id: UUID, amount: int, fee_bps: int
    ) -> tuple[OperationResult, operations.Reconversion]:
        """Turn a merchant's RolloN back into euros owed to it, less the fee."""
        plan = operations.reconversion(operation_id, merchant_account_id, amount, fee_bps)
        return self._operation(plan.transfers), plan

    def pay_out(self, operation_id: UUID, amount: int, reference: str) -> OperationResult:
        """Record euros paid out of the fund for reconversions."""
        return self._operation(operations.payout(operation_id, amount, reference))

    def _operation(self, legs: Sequence[Transfer]) -> OperationResult:
        results = self.submit(legs)
        return OperationResult(result=operations.outcome_of(results), legs=results)

    # -- proof ------------------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint | None:
        """Sign the current chain head now (if it is not signed already)."""
        if self.signing_key is None:
            return None
        with write_transaction(self.engine) as connection:
            head = lock_head(connection)
            if head.seq == 0:
                return None
            signed = connection.execute(
                sa.select(checkpoints.c.seq).where(checkpoints.c.seq == head.seq)
            ).first()
            checkpoint = sign_checkpoint(self.signing_key, head)
            if signed is None:
                insert_checkpoint(connection, checkpoint)
        return checkpoint
