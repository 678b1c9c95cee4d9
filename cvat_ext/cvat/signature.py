"""CVAT webhook signatures: ``X-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>``.

CVAT signs the exact bytes it sends; verify against the raw request body, never a re-serialised
JSON. No cvat_sdk import here: the sidecar's HTTP endpoint uses this directly.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Signature-256`` header value CVAT sends for ``body``."""
    return PREFIX + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the valid signature of ``body``; compared in constant time.

    A missing header, a header without the ``sha256=`` prefix or an empty secret never verifies.
    """
    if not header or not secret or not header.startswith(PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"), header.strip().encode("ascii", "replace"))
