"""Every page's router, gathered into the one `router` that app.py includes."""

from __future__ import annotations

from fastapi import APIRouter

from rollon.api.web import admin, auditor, directory, sign_in, static_files, till, wallet

router = APIRouter(include_in_schema=False)
for area in (static_files, sign_in, wallet, till, admin, auditor, directory):
    router.include_router(area.router)
