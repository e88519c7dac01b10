"""The merchants layer as the API's routes reach it: one `Merchants` per running app, and
its refusals as problem+json.

For route authors: take `merchants: MerchantsDep` (or call `merchants_of(request)`), call
its (blocking) services in the thread pool, and turn a `MerchantError` into a problem with
`problem_of(error)`.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request

from rollon.api.problems import ProblemError, problem_for_result
from rollon.api.state import AppState, get_state
from rollon.merchants.errors import MerchantError, Refusal
from rollon.merchants.service import Merchants
from rollon.merchants.settings import MerchantSettings

_STATUS = {
    Refusal.INVALID: 422,
    Refusal.NOT_FOUND: 404,
    Refusal.FORBIDDEN: 403,
    Refusal.CONFLICT: 409,
    Refusal.GONE: 410,
    Refusal.BUSY: 409,
}
_lock = threading.Lock()


def problem_of(error: MerchantError) -> ProblemError:
    """The problem a client gets for a merchants refusal; its code is the error's own."""
    if error.result is not None:
        return problem_for_result(error.result, str(error))
    headers = {"Retry-After": "1"} if error.refusal is Refusal.BUSY else None
    title = error.code.replace("_", " ").capitalize()
    return ProblemError(_STATUS[error.refusal], error.code, title, str(error), headers=headers)


def merchants_of(request: Request) -> Merchants:
    """The running app's merchants services, made on first use."""
    state = get_state(request)
    held: tuple[AppState, Merchants] | None = getattr(request.app.state, "merchants", None)
    if held is not None and held[0] is state:
        return held[1]
    with _lock:
        held = getattr(request.app.state, "merchants", None)
        if held is None or held[0] is not state:  # first use, or the app was restarted
            settings = MerchantSettings.from_env(fee_bps=state.settings.fee_bps)
            held = (state, Merchants(state.engine, state.ledger, settings))
            request.app.state.merchants = held
    return held[1]


async def _merchants(request: Request) -> Merchants:
    # An async dependency: FastAPI would run a plain function in its thread pool.
    return merchants_of(request)


MerchantsDep = Annotated[Merchants, Depends(_merchants)]
