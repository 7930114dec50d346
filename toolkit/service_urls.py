"""Which service a URL names, and whether tokens may travel to it: the rules for the URLs of
Pulumi Cloud and of self-managed backends, apart from any token."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from toolkit.errors import InvalidInputError

_CLOUD_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK = "127.0.0.1"
"""How a service URL's identity names this machine, however the URL names it."""

INSECURE_HINT = (
    "Use an https:// URL; or, knowing that the token then travels unencrypted, pass --insecure "
    "(allow_insecure=True from Python)."
)

_API_URL_EXAMPLE = "Give the service's URL, such as https://api.pulumi.com."


def is_cloud_url(url: str) -> bool:
    """A Pulumi Cloud (HTTP) URL rather than a self-managed backend's (file://, s3://, ...)."""
    return urlsplit(url).scheme in _CLOUD_SCHEMES


def canonical_url(url: str) -> str:
    """The one spelling of a backend URL that says which service it is, for what a service
    identifies (locks, run keys, stored logins): `HTTP://LocalHost:80/api/` and
    `http://127.0.0.1` are one service. Scheme and host in lower case, no default port, no
    trailing slashes or `/api`, every name of this machine's loopback (`localhost`, ::1)
    as 127.0.0.1. A self-managed backend's URL (file://, s3://) is its own identity."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise InvalidInputError(
            f"{url!r} is not a backend URL ({error}).",
            hint="Give a URL such as https://api.pulumi.com.",
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in _CLOUD_SCHEMES:
        return url
    host = _LOOPBACK if _is_loopback_name(parts.hostname or "") else parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path.rstrip("/")
    path = path.removesuffix("/api").rstrip("/")
    return f"{scheme}://{netloc}{path}"


def require_api_url(url: str, origin: str) -> None:
    """Refuse, before anything is sent, an API URL that cannot name a Pulumi Cloud API: one
    without an http(s) scheme or a host, or one ending in `/api` (the client adds `/api`
    itself; with it twice every call would answer 404). `origin` names where the URL came
    from (an option or a variable)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what checks it
    except ValueError as error:
        raise InvalidInputError(
            f"{origin} {url!r} is not a URL ({error}).", hint=_API_URL_EXAMPLE
        ) from None
    if "://" not in url:  # `api.pulumi.com`, `localhost:8080`
        raise InvalidInputError(
            f"{origin} {url!r} has no scheme; a Pulumi Cloud API URL starts with https://.",
            hint=f"Give the service's URL with its scheme, such as https://{url}.",
        )
    if parts.scheme.lower() not in _CLOUD_SCHEMES:
        raise InvalidInputError(
            f"{origin} {url!r} is not a Pulumi Cloud API URL (http:// or https://); a "
            "self-managed backend goes in --source-backend or --destination-backend.",
            hint=_API_URL_EXAMPLE,
        )
    if not parts.hostname:
        raise InvalidInputError(f"{origin} {url!r} names no host.", hint=_API_URL_EXAMPLE)
    if parts.path.rstrip("/").endswith("/api"):
        raise InvalidInputError(
            f"{origin} {url!r} ends in /api; give the service's URL without it: "
            f"{url.rstrip('/').removesuffix('/api')}.",
            hint="The API's paths (/api/...) are added to the URL given.",
        )


def _is_loopback_name(host: str) -> bool:
    """`localhost`, 127.0.0.1, ::1 or ::ffff:127.0.0.1: this machine, as a URL may name it."""
    if host.rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address in (ipaddress.ip_address(_LOOPBACK), ipaddress.ip_address("::1"))


def is_cleartext_remote(url: str) -> bool:
    """An `http://` URL to another machine than this one (loopback: 127.0.0.0/8, ::1,
    `localhost`): whatever is sent there, tokens included, can be read on the way."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return url.lower().startswith("http:")
    if parts.scheme != "http":
        return False
    if host == "localhost":
        return False
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return not address.is_loopback


def require_secure_url(url: str, origin: str, *, allow_insecure: bool) -> None:
    """Refuse, before anything is sent, a service URL that would carry tokens in cleartext
    over the network (`is_cleartext_remote`), unless the caller allows it knowingly.
    `origin` names where the URL came from (an option or a variable)."""
    if allow_insecure or not is_cleartext_remote(url):
        return
    raise InvalidInputError(
        f"refusing to send tokens in cleartext to {url} (from {origin}); nothing was sent.",
        hint=INSECURE_HINT,
    )
