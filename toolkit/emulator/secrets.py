"""Secret keys per stack and per ESC environment, as the service's secrets manager keeps them.

Every stack and every environment gets its own random AES-256 key when it is created.
Ciphertext is sealed with AES-GCM and bound to its owner's id as associated data, so
ciphertext made for one stack (or environment) never opens under another, even one that
(against all odds) drew the same key. The key and id follow a stack through renames and
transfers, so its ciphertext stays valid.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


Seal = Callable[[str], str]
"""Plaintext secret -> ciphertext (base64), with its owner's key."""
Unseal = Callable[[str], str]
"""Ciphertext (base64) -> plaintext; raises `ValueError` for ciphertext the key did not seal."""


class UndecryptableError(ValueError):
    """Ciphertext that this owner's key did not seal (another stack's, or corrupted)."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encrypt(key: bytes, owner_id: str, plaintext: bytes) -> bytes:
    """`plaintext` sealed for its owner (a stack or an environment, by id): a fresh nonce
    followed by the AES-GCM ciphertext."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, owner_id.encode())


def decrypt(key: bytes, owner_id: str, ciphertext: bytes) -> bytes:
    nonce, sealed = ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:]
    if len(nonce) < _NONCE_BYTES:
        raise UndecryptableError("the ciphertext is too short")
    try:
        return AESGCM(key).decrypt(nonce, sealed, owner_id.encode())
    except InvalidTag:
        raise UndecryptableError("the ciphertext was not sealed with this key") from None


def sealing(key: bytes, owner_id: str) -> tuple[Seal, Unseal]:
    """The owner's pair of secret functions for text: plaintext -> base64 ciphertext and back,
    as the service shows a sealed secret (an environment's `fn::secret`, a stack's deployment
    settings)."""

    def seal(plaintext: str) -> str:
        return base64.b64encode(encrypt(key, owner_id, plaintext.encode())).decode("ascii")

    def unseal(ciphertext: str) -> str:
        try:
            sealed = base64.b64decode(ciphertext.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ValueError("the ciphertext is not base64") from None
        return decrypt(key, owner_id, sealed).decode()

    return seal, unseal
