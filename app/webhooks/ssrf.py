"""SSRF guard for webhook targets (checklist D21-D23).

Two layers:

* ``check_url`` runs at registration. It accepts only ``https`` on port 443 (unless
  ``allow_private``), rejects userinfo, fragments, odd IPv4 spellings (``2130706433``, ``127.1``,
  ``0x7f000001``, ``0177.0.0.1``) and any host that resolves to even one non-public address.
* ``guarded_client`` is used at delivery. Its network backend resolves the host itself for every
  new TCP connection, refuses (``BlockedAddress``) when any answer is non-public and connects to
  the vetted IP, so DNS rebinding between registration and delivery cannot reach a private
  address. TLS still verifies the certificate for the original hostname (SNI = hostname, since
  httpcore takes ``server_hostname`` from the request origin, not from the socket). Redirects
  are never followed, no cookies are kept, environment proxies are ignored, and each connection
  lives at most ``timeout`` seconds in total, so a slow-drip header or body cannot hold a worker.

Use ``client.stream(...)`` with ``read_limited`` to cap the stored response body.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
import typing
from collections.abc import Callable, Iterable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Final
from urllib.parse import urlsplit

import certifi
import httpcore
import httpx

__all__ = [
    "MAX_URL_LENGTH",
    "BlockedAddress",
    "InvalidWebhookUrl",
    "Resolver",
    "blocked",
    "check_url",
    "guarded_client",
    "is_public_address",
    "read_limited",
]

Resolver = Callable[..., list[Any]]
"""``socket.getaddrinfo``-compatible: ``resolve(host, port, type=socket.SOCK_STREAM)``."""

MAX_URL_LENGTH: Final = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_RULE_TEXT: Final[dict[str, str]] = {
    "too_long": f"the URL must be at most {MAX_URL_LENGTH} characters",
    "syntax": "the URL must not contain whitespace or control characters",
    "scheme": "the URL must use https",
    "userinfo": "the URL must not contain a user name or password",
    "fragment": "the URL must not contain a fragment (#...)",
    "host": "the URL must contain a valid host name",
    "port": "the URL must use port 443",
    "ip_literal_form": "IPv4 addresses must be written as a canonical dotted quad (a.b.c.d)",
    "private_address": "the host must resolve only to public internet addresses",
    "unresolvable": "the host name could not be resolved",
}

_NAT64_WELL_KNOWN: Final = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
_LABEL_RE: Final = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_LABEL_RE: Final = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")
_FORBIDDEN_CHARS_RE: Final = re.compile(r"[\x00-\x20\x7f-\x9f\\]")


class InvalidWebhookUrl(ValueError):
    """A webhook URL broke one of the registration rules; ``rule`` is a stable code."""

    def __init__(self, rule: str, detail: str | None = None) -> None:
        self.rule = rule
        text = _RULE_TEXT.get(rule, rule)
        message = f"webhook URL rejected [{rule}]: {text}"
        if detail:
            message = f"{message} ({detail})"
        super().__init__(message)


class BlockedAddress(Exception):
    """At connect time the host resolved to a non-public address; nothing was connected."""

    def __init__(self, host: str, address: str) -> None:
        self.host = host
        self.address = address
        super().__init__(f"blocked_ip: {host} resolved to non-public address {address}")


def blocked(exc: BaseException) -> str | None:
    """The refused address if ``exc`` is, or was caused by, a ``BlockedAddress``; else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, BlockedAddress):
            return current.address
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


# --------------------------------------------------------------------------------------------
# Address classification


def _is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _is_public(ip.ipv4_mapped)
        if ip in _NAT64_WELL_KNOWN:
            return _is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _NAT64_LOCAL_USE or ip.teredo is not None:
            return False
        if ip.sixtofour is not None:
            return _is_public(ip.sixtofour)
        if ip.is_site_local:
            return False
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_reserved
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
    )


def is_public_address(ip: str) -> bool:
    """True when ``ip`` (an IPv4/IPv6 literal, optional ``%zone``) is a public unicast address.

    Loopback, private, link-local (incl. 169.254.169.254), CGNAT 100.64/10, unspecified,
    multicast, reserved, unique-local and site-local addresses are not public. IPv4-mapped
    (``::ffff:a.b.c.d``) and NAT64 (``64:ff9b::a.b.c.d``) addresses are judged by the embedded
    IPv4 address, 6to4 (``2002::/16``) by its embedded IPv4 address; Teredo is never public.
    Anything that does not parse is not public.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return _is_public(address)


# --------------------------------------------------------------------------------------------
# Registration check


def _reject_noncanonical_ipv4(host: str) -> None:
    """WHATWG treats a host whose last label is numeric as IPv4; accept only a.b.c.d."""
    last = host.rstrip(".").rsplit(".", 1)[-1]
    try:
        socket.inet_aton(host)
        inet_aton_accepts = True
    except OSError:
        inet_aton_accepts = False
    if not (inet_aton_accepts or _NUMERIC_LABEL_RE.match(last)):
        return
    try:
        canonical = str(ipaddress.IPv4Address(host))
    except ValueError:
        canonical = None
    if canonical != host:
        raise InvalidWebhookUrl("ip_literal_form", host)


def _normalise_host(raw_host: str, netloc: str) -> tuple[str, IPAddress | None]:
    """(host as it goes into the URL, parsed IP if the host is an IP literal)."""
    if netloc.rsplit("@", 1)[-1].startswith("["):
        try:
            ip6 = ipaddress.IPv6Address(raw_host)
        except ValueError:
            raise InvalidWebhookUrl("host", "invalid IPv6 literal") from None
        return f"[{ip6.compressed}]", ip6
    try:
        host = raw_host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidWebhookUrl("host", "invalid international domain name") from None
    _reject_noncanonical_ipv4(host)
    try:
        return host, ipaddress.IPv4Address(host)
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253 or not all(_LABEL_RE.match(label) for label in name.split(".")):
        raise InvalidWebhookUrl("host", host)
    return host, None


def _resolved_addresses(resolve: Resolver, host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (empty list on failure)."""
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def check_url(url: str, *, allow_private: bool, resolve: Resolver = socket.getaddrinfo) -> str:
    """Validate a webhook target at registration; return the normalised URL.

    Raises ``InvalidWebhookUrl`` (``.rule`` is one of ``too_long``, ``syntax``, ``scheme``,
    ``userinfo``, ``fragment``, ``host``, ``port``, ``ip_literal_form``, ``private_address``,
    ``unresolvable``). With ``allow_private`` http, any port and private addresses are accepted,
    but the host must still resolve.
    """
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl("too_long", f"{len(url)} characters")
    if _FORBIDDEN_CHARS_RE.search(url):
        raise InvalidWebhookUrl("syntax")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidWebhookUrl("host", str(exc)) from None
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if scheme not in allowed_schemes:
        raise InvalidWebhookUrl("scheme", f"got {scheme or 'none'!r}")
    if "@" in parts.netloc:
        raise InvalidWebhookUrl("userinfo")
    if "#" in url:
        raise InvalidWebhookUrl("fragment")
    if not parts.hostname:
        raise InvalidWebhookUrl("host", "missing host")
    try:
        explicit_port = parts.port
    except ValueError:
        raise InvalidWebhookUrl("port", "invalid port") from None
    default_port = 443 if scheme == "https" else 80
    port = default_port if explicit_port is None else explicit_port
    if port == 0 or (not allow_private and port != 443):
        raise InvalidWebhookUrl("port", f"got {port}")

    host, literal = _normalise_host(parts.hostname, parts.netloc)
    if not allow_private:
        name = host.rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            raise InvalidWebhookUrl("private_address", host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        addresses = _resolved_addresses(resolve, host, port)
        if not addresses:
            raise InvalidWebhookUrl("unresolvable", host)
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                raise InvalidWebhookUrl("private_address", f"{host} -> {address}")

    netloc = host if port == default_port else f"{host}:{port}"
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{path}{query}"


# --------------------------------------------------------------------------------------------
# Delivery client


class _DeadlineStream(httpcore.NetworkStream):
    """Clamps every socket operation to a per-connection deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _remaining(self, timeout: float | None, exc: type[Exception]) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise exc("total webhook timeout exceeded")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context,
            server_hostname=server_hostname,
            timeout=self._remaining(timeout, httpcore.ConnectTimeout),
        )
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves, vets and connects to the vetted IP for every new TCP connection."""

    def __init__(self, *, allow_private: bool, total_timeout: float, resolve: Resolver) -> None:
        self._allow_private = allow_private
        self._total_timeout = total_timeout
        self._resolve = resolve

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = time.monotonic() + self._total_timeout
        try:
            infos = self._resolve(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
        if not self._allow_private:
            for address in addresses:
                if not is_public_address(address):
                    raise BlockedAddress(host, address)
        last_error: Exception | None = None
        for address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                stream = super().connect_tcp(
                    address,
                    port,
                    timeout=remaining if timeout is None else min(timeout, remaining),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            return _DeadlineStream(stream, deadline)
        if last_error is not None:
            raise last_error
        raise httpcore.ConnectTimeout(f"total webhook timeout exceeded connecting to {host}")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - never configured
        raise httpcore.ConnectError("unix sockets are not allowed for webhooks")


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, pool: httpcore.ConnectionPool) -> None:
        # Deliberately not calling super().__init__: it would build a second, unguarded pool.
        self._pool = pool


class _NoCookies(DefaultCookiePolicy):
    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


def guarded_client(
    *,
    allow_private: bool,
    timeout: float,
    resolve: Resolver = socket.getaddrinfo,
    verify: ssl.SSLContext | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` for webhook delivery that cannot be steered to private addresses.

    * every new connection resolves the host through ``resolve``; if any answer is non-public
      (and not ``allow_private``) ``BlockedAddress`` is raised (see ``blocked``) before any
      socket is opened, otherwise it connects to the vetted IP; TLS verifies the certificate
      for the URL's host name (``verify`` overrides the certifi CA bundle, e.g. for tests);
    * ``follow_redirects=False``; no cookie is stored or sent; environment proxies and
      ``.netrc`` are ignored; ``Accept-Encoding: identity``;
    * connections are not reused and each lives at most ``timeout`` seconds from the connect
      attempt, which bounds slow-drip headers and bodies (httpx timeouts are per operation).
    """
    ssl_context = (
        verify if verify is not None else ssl.create_default_context(cafile=certifi.where())
    )
    backend = _GuardedBackend(allow_private=allow_private, total_timeout=timeout, resolve=resolve)
    pool = httpcore.ConnectionPool(
        ssl_context=ssl_context,
        max_connections=10,
        max_keepalive_connections=0,
        http1=True,
        http2=False,
        retries=0,
        network_backend=backend,
    )
    return httpx.Client(
        transport=_GuardedTransport(pool),
        follow_redirects=False,
        timeout=httpx.Timeout(timeout),
        cookies=CookieJar(policy=_NoCookies()),
        trust_env=False,
        headers={"Accept-Encoding": "identity"},
    )


def read_limited(
    response: httpx.Response, limit: int = 64 * 1024, *, deadline: float | None = None
) -> bytes:
    """Read at most ``limit`` raw body bytes from a streamed response, then stop.

    ``deadline`` (``time.monotonic()`` based) additionally bounds the read; the guarded client
    already bounds each connection's lifetime. Raises ``httpx.ReadTimeout`` when it passes.
    """
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_raw():
        if deadline is not None and time.monotonic() > deadline:
            raise httpx.ReadTimeout("total webhook timeout exceeded", request=response.request)
        chunks.append(chunk[: limit - size])
        size += len(chunks[-1])
        if size >= limit:
            break
    return b"".join(chunks)
