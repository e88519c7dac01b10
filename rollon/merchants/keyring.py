"""The keys behind QR payloads: the service's Ed25519 key signs them (the same key signs
journal checkpoints, under another domain), and every key still trusted verifies them, so
stickers printed before a key rotation keep working until their key is retired."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rollon.ledger.journal import key_id


class Keyring:
    """The signing key and the public keys that verify payloads, by key id."""

    def __init__(
        self, signing_key: Ed25519PrivateKey, older_keys: Iterable[Ed25519PublicKey] = ()
    ) -> None:
        self.signing_key = signing_key
        self.signing_key_id = key_id(signing_key.public_key())
        keys = {key_id(k): k for k in older_keys}
        keys[self.signing_key_id] = signing_key.public_key()
        self.verify_keys: Mapping[str, Ed25519PublicKey] = MappingProxyType(keys)
