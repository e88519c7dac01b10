"""What a running app holds: settings, engine, the Ledger and the API's own components.

For route authors: take `state: StateDep` (or call `get_state(request)`) to reach
`state.ledger` (the only way to move money), `state.engine` (reads, and your own tables),
`state.settings` (fee and bonus rates, limits), `state.metrics` and `state.account_kinds`
(a cache of each account's kind). It is built once per app
by `create_app`'s lifespan and closed with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from rollon.api.account_kinds import AccountKinds
    from rollon.api.auth import Authenticator
    from rollon.api.idempotency import IdempotencyStore
    from rollon.api.metrics import Metrics
    from rollon.api.settings import Settings
    from rollon.ledger.service import Ledger


@dataclass(slots=True)
class AppState:
    settings: Settings
    engine: Engine
    ledger: Ledger
    authenticator: Authenticator
    idempotency: IdempotencyStore
    metrics: Metrics
    account_kinds: AccountKinds


def get_state(request: Request) -> AppState:
    """The running app's state (a FastAPI dependency)."""
    state = request.app.state.rollon
    assert isinstance(state, AppState), "the app was not started through create_app"
    return state


async def _state(request: Request) -> AppState:
    # An async dependency: FastAPI would run a plain function in its thread pool, a hop
    # that costs more than the lookup itself.
    return get_state(request)


StateDep = Annotated[AppState, Depends(_state)]
