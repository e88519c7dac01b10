"""Random batches for the property tests: plain payments, linked chains, two-phase transfers
with timeouts, posts and voids of them, retries (same or changed fields), duplicate ids, bad
references and bad fields, drawn interactively so posts and voids can name real holds."""

from __future__ import annotations

from dataclasses import dataclass, replace
from uuid import UUID, uuid5

from hypothesis import strategies as st

from rollon.ledger.accounts import LedgerCode
from rollon.ledger.money import MAX_AMOUNT
from rollon.ledger.transfers import Transfer, TransferCode, TransferFlag

F = TransferFlag
SHARED_IDS = 8  # ids drawn from a small pool collide: duplicates within and across batches


@dataclass(frozen=True)
class Cast:
    """The accounts a workload plays with."""

    source: UUID  # where money comes from: rich, or without limit
    members: tuple[UUID, ...]  # may never go below zero
    closed: UUID
    foreign: UUID  # on the other ledger
    missing: UUID  # no such account

    @property
    def everyone(self) -> tuple[UUID, ...]:
        return (self.source, *self.members, self.closed, self.foreign, self.missing)


@dataclass(frozen=True)
class Step:
    advance_s: int
    requests: list[list[Transfer]]


class WorkloadDrawer:
    """Draws steps (a clock advance and the requests of one batch) for one example."""

    def __init__(self, cast: Cast, namespace: UUID, *, huge_amounts: bool = True) -> None:
        self.cast = cast
        self.namespace = namespace
        self.huge_amounts = huge_amounts
        self.sent: list[Transfer] = []
        self.pendings: list[Transfer] = []
        self._fresh = 0

    def draw_step(self, data: st.DataObject) -> Step:
        advance_s = data.draw(st.sampled_from([0, 0, 1, 2, 4]), label="advance_s")
        n_requests = data.draw(st.integers(1, 4), label="requests")
        requests = []
        for _ in range(n_requests):
            request: list[Transfer] = []
            for _ in range(data.draw(st.integers(1, 3), label="chains")):
                length = data.draw(st.sampled_from([1, 1, 2, 3]), label="chain length")
                request += [self._draw_transfer(data, i < length - 1) for i in range(length)]
            if data.draw(st.integers(0, 7), label="leave the chain open?") == 0:
                request[-1] = replace(request[-1], flags=request[-1].flags | F.LINKED)
            requests.append(request)
        return Step(advance_s, requests)

    # -- pieces -------------------------------------------------------------------------------
    def _id(self, data: st.DataObject) -> UUID:
        if data.draw(st.integers(0, 4), label="shared id?") == 0:
            return uuid5(self.namespace, f"shared-{data.draw(st.integers(0, SHARED_IDS - 1))}")
        self._fresh += 1
        return uuid5(self.namespace, f"fresh-{self._fresh}")

    def _amount(self, data: st.DataObject) -> int:
        if data.draw(st.integers(0, 9), label="special amount?") == 0:
            special = [0, -5, MAX_AMOUNT, MAX_AMOUNT + 1] if self.huge_amounts else [0, -5]
            return data.draw(st.sampled_from(special), label="amount")
        return data.draw(st.integers(1, 300), label="amount")

    def _funding(self, data: st.DataObject) -> int:
        if self.huge_amounts and data.draw(st.integers(0, 7), label="huge funding?") == 0:
            return MAX_AMOUNT
        return data.draw(st.integers(1, 500), label="funding")

    def _account(self, data: st.DataObject, *, payer: bool) -> UUID:
        c = self.cast
        usual = [*c.members, c.source] if not payer else [*c.members, *c.members, c.source]
        odd = list(c.everyone)
        pool = odd if data.draw(st.integers(0, 7), label="odd account?") == 0 else usual
        return data.draw(st.sampled_from(pool), label="account")

    def _draw_transfer(self, data: st.DataObject, linked_to_next: bool) -> Transfer:
        """One transfer; linked to the next one when asked, except exact retries."""
        kind = data.draw(
            st.sampled_from(
                ["pay", "pay", "fund", "pending", "post", "void", "retry", "retry", "odd"]
            ),
            label="kind",
        )
        linked = F.LINKED if linked_to_next else F.NONE
        if kind == "retry" and self.sent:
            earlier = data.draw(st.sampled_from(self.sent), label="retry of")
            change = data.draw(st.sampled_from(["same", "same", "amount", "memo", "code"]))
            if change == "same":
                self.sent.append(earlier)
                return earlier  # exactly as sent before, flags included
            t = {
                "amount": replace(earlier, amount=earlier.amount + 1),
                "memo": replace(earlier, memo=earlier.memo + "!"),
                "code": replace(earlier, code=TransferCode.CORRECTION),
            }[change]
        elif kind in ("post", "void"):
            t = self._resolution(data, F.POST_PENDING if kind == "post" else F.VOID_PENDING)
        elif kind == "odd":
            t = self._odd(data)
        else:
            payer = self.cast.source if kind == "fund" else self._account(data, payer=True)
            payee = self._account(data, payer=False)
            pending = kind == "pending"
            t = Transfer(
                id=self._id(data),
                debit_account_id=payer,
                credit_account_id=payee,
                amount=self._amount(data) if kind != "fund" else self._funding(data),
                ledger=LedgerCode.RLN,
                code=TransferCode.PAYMENT,
                flags=F.PENDING if pending else F.NONE,
                timeout_s=data.draw(st.sampled_from([0, 0, 1, 3]), label="timeout")
                if pending
                else 0,
            )
            if pending:
                self.pendings.append(t)
        t = replace(t, flags=(t.flags & ~F.LINKED) | linked)
        self.sent.append(t)
        return t

    def _resolution(self, data: st.DataObject, phase: TransferFlag) -> Transfer:
        if self.pendings and data.draw(st.integers(0, 5), label="known pending?") > 0:
            # Mostly a recent one, so holds are often resolved in the batch that opened them.
            recent = data.draw(st.integers(0, 3), label="how recent") < 3
            pool = self.pendings[-2:] if recent else self.pendings
            pending = data.draw(st.sampled_from(pool), label="pending")
        else:
            pending = Transfer(
                self._id(data),
                self.cast.source,
                self.cast.members[0],
                10,
                LedgerCode.RLN,
                TransferCode.PAYMENT,
            )
        amount = data.draw(
            st.sampled_from(
                [pending.amount, pending.amount, max(1, pending.amount // 2), pending.amount + 1]
            ),
            label="resolve amount",
        )
        debit, credit = pending.debit_account_id, pending.credit_account_id
        if data.draw(st.integers(0, 9), label="wrong parties?") == 0:
            debit, credit = credit, debit
        return Transfer(
            id=self._id(data),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            ledger=pending.ledger,
            code=TransferCode.PAYMENT,
            flags=phase,
            pending_id=pending.id,
        )

    def _odd(self, data: st.DataObject) -> Transfer:
        base = Transfer(
            id=self._id(data),
            debit_account_id=self._account(data, payer=True),
            credit_account_id=self._account(data, payer=False),
            amount=data.draw(st.integers(1, 50)),
            ledger=LedgerCode.RLN,
            code=TransferCode.TRANSFER,
        )
        oddity = data.draw(
            st.sampled_from(
                [
                    {"flags": F.PENDING | F.POST_PENDING},
                    {"flags": F.POST_PENDING},
                    {"pending_id": self._id(data)},
                    {"timeout_s": 5},
                    {"flags": F.PENDING, "timeout_s": -1},
                    {"memo": "m" * 513},
                    {"event_time_ns": -1},
                    {"event_time_ns": 1_500_000_000_000_000_000},
                    {"ledger": LedgerCode.EUR},
                    {"credit_account_id": base.debit_account_id},
                    {"debit_account_id": self.cast.missing},
                ]
            ),
            label="oddity",
        )
        return replace(base, **oddity)  # type: ignore[arg-type]
