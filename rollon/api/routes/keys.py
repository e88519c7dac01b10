"""`GET /v1/keys`: the public keys that verify QR payloads and journal checkpoints, so
anyone (a payer's app, an auditor) can check them without trusting the server's word."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from rollon.api.merchant_services import MerchantsDep
from rollon.api.problems import PROBLEM_RESPONSES
from rollon.ledger.keys import public_key_pem

router = APIRouter(prefix="/v1", tags=["keys"], responses=PROBLEM_RESPONSES)


class KeyOut(BaseModel):
    key_id: str = Field(description="Named in QR payloads (tag 26-02) and checkpoints")
    algorithm: Literal["Ed25519"] = "Ed25519"
    public_key_pem: str
    current: bool = Field(description="True for the key that signs now")
    uses: list[Literal["qr_payload", "journal_checkpoint"]]


class KeysOut(BaseModel):
    keys: list[KeyOut]


@router.get("/keys", response_model=KeysOut, summary="Public keys of the service")
async def get_keys(merchants: MerchantsDep) -> KeysOut:
    keyring = merchants.keyring
    return KeysOut(
        keys=[
            KeyOut(
                key_id=key_id,
                public_key_pem=public_key_pem(key),
                current=key_id == keyring.signing_key_id,
                uses=["qr_payload", "journal_checkpoint"],
            )
            for key_id, key in keyring.verify_keys.items()
        ]
    )
