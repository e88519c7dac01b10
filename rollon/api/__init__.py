"""The service layer: FastAPI application, authentication and roles, HTTP routes, the
`rollon` command line.

Where things are, for those who add routes:
- `app.py`: `create_app(settings)` and `ROUTERS`, the one list where routers are included.
- `routes/`: one module per resource, each exposing an `APIRouter`.
- `auth.py`: `require_roles(...)` gives the calling `Principal` (role, account_id).
- `problems.py`: `ProblemError(status, code, title, detail)`, RFC 9457 answers.
- `idempotency.py`: `IdempotencyDep` for money-moving POSTs (the Idempotency-Key header).
- `state.py`: `StateDep`, the running app's Ledger, engine, settings and metrics.
- `settings.py`: configuration from ROLLON_* variables and flags.
"""
