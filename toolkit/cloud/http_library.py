"""aiohttp, the REST client's HTTP library, imported without reading the system's certificates.

When imported, aiohttp makes two default TLS contexts, each loading every certificate of the
system's bundle: about 40 ms of CPU before a command's first request. The toolkit never uses
them: its transport passes a context of its own for https (the certifi bundle) and none for
http. So the import points OpenSSL's `SSL_CERT_FILE` at an empty file while it runs, and puts
the variable back as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

CERTIFICATE_FILE_VARIABLE = "SSL_CERT_FILE"


@contextmanager
def _no_system_certificates() -> Iterator[None]:
    """Within: OpenSSL's default certificate file is empty; after: as it was."""
    saved = os.environ.get(CERTIFICATE_FILE_VARIABLE)
    os.environ[CERTIFICATE_FILE_VARIABLE] = os.devnull
    try:
        yield
    finally:
        if saved is None:
            del os.environ[CERTIFICATE_FILE_VARIABLE]
        else:
            os.environ[CERTIFICATE_FILE_VARIABLE] = saved


with _no_system_certificates():
    import aiohttp

__all__ = ["aiohttp"]
