"""Per-stack secret keys, as the service's secrets manager keeps them.

Every stack gets its own random AES-256 key when it is created. Ciphertext is sealed with
AES-GCM and bound to the stack's id as associated data, so ciphertext made for one stack
never opens under another stack, even one that (against all odds) drew the same key. The
key and id follow the stack through renames and transfers, so its ciphertext stays valid.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class UndecryptableError(ValueError):
    """Ciphertext that this stack's key did not seal (another stack's, or corrupted)."""


def new_stack_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encrypt(key: bytes, stack_id: str, plaintext: bytes) -> bytes:
    """`plaintext` sealed for the stack: a fresh nonce followed by the AES-GCM ciphertext."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, stack_id.encode())


def decrypt(key: bytes, stack_id: str, ciphertext: bytes) -> bytes:
    nonce, sealed = ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:]
    if len(nonce) < _NONCE_BYTES:
        raise UndecryptableError("the ciphertext is too short")
    try:
        return AESGCM(key).decrypt(nonce, sealed, stack_id.encode())
    except InvalidTag:
        raise UndecryptableError("the ciphertext was not sealed with this stack's key") from None
