"""SSRF guard for webhook targets: checklist D21 (registration), D22 (rebinding), D23 (redirects).

No real DNS: every resolver is injected. The only network is a loopback receiver started here.
"""

from __future__ import annotations

import datetime as dt
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.webhooks.ssrf import (
    MAX_URL_LENGTH,
    BlockedAddress,
    InvalidWebhookUrl,
    blocked,
    check_url,
    guarded_client,
    is_public_address,
    read_limited,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
HOOK_HOST = "hooks.example.test"


# --------------------------------------------------------------------------------------------
# Fake resolvers


def _info(ip: str, port: int) -> tuple[Any, ...]:
    if ":" in ip:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))


class FakeResolver:
    """``getaddrinfo`` stand-in: answers per host, or a sequence of answers (DNS rebinding)."""

    def __init__(
        self,
        answers: dict[str, list[str]] | None = None,
        *,
        sequence: Sequence[list[str]] = (),
    ) -> None:
        self.answers = answers or {}
        self.sequence = list(sequence)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.calls.append((host, port))
        if self.sequence:
            ips = self.sequence.pop(0) if len(self.sequence) > 1 else self.sequence[0]
        elif host in self.answers:
            ips = self.answers[host]
        else:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_info(ip, port) for ip in ips]


def no_dns(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
    raise AssertionError(f"resolver must not be called for {host!r}")


# --------------------------------------------------------------------------------------------
# Loopback receiver


@dataclass
class Receiver:
    port: int
    stop: threading.Event
    behaviour: str = "ok"
    redirect_status: int = 302
    connections: int = 0
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)

    def url(self, host: str = HOOK_HOST, path: str = "/hook", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


def _handler(state: Receiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _drip(self, head: bytes, unit: bytes) -> None:
            try:
                self.wfile.write(head)
                while not state.stop.wait(0.05):
                    self.wfile.write(unit)
            except OSError:
                pass
            self.close_connection = True

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            state.requests.append((self.command, self.path, dict(self.headers.items())))
            if state.behaviour == "redirect":
                self.send_response(state.redirect_status)
                self.send_header("Location", f"http://127.0.0.1:{state.port}/admin")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif state.behaviour == "drip_body":
                self._drip(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"x")
            elif state.behaviour == "drip_headers":
                self._drip(b"HTTP/1.1 200 OK\r\n", b"X-Slow: 1\r\n")
            else:
                body = b"x" * 200_000 if state.behaviour == "big" else b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Set-Cookie", "session=abc; Path=/")
                self.end_headers()
                self.wfile.write(body)

        do_GET = _handle
        do_POST = _handle

    return Handler


class _CountingServer(http.server.ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    state: Receiver

    def get_request(self) -> tuple[Any, Any]:
        request = super().get_request()
        self.state.connections += 1
        return request


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    stop = threading.Event()
    server = _CountingServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    state = Receiver(port=server.server_address[1], stop=stop)
    server.state = state
    server.RequestHandlerClass = _handler(state)
    if tls is not None:
        tls.sni_callback = lambda sslobj, name, ctx: state.sni.append(name)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _serve()


def _self_signed(hostname: str) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for ``hostname``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture
def tls_receiver(tmp_path: Any) -> Iterator[tuple[Receiver, ssl.SSLContext]]:
    """A loopback HTTPS receiver whose certificate names HOOK_HOST, and a context trusting it."""
    cert_pem, key_pem = _self_signed(HOOK_HOST)
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cadata=cert_pem.decode())
    for state in _serve(server_ctx):
        yield state, client_ctx


# --------------------------------------------------------------------------------------------
# D21: registration

#: Every attack in checklist item 21 (plus a few neighbours), with the rule that must fire.
ATTACKS: list[tuple[str, str]] = [
    ("http://hooks.example.com/hook", "scheme"),
    ("https://hooks.example.com:8443/hook", "port"),
    ("https://hooks.example.com:80/hook", "port"),
    ("https://127.0.0.1/hook", "private_address"),
    ("https://127.0.0.1:443/hook", "private_address"),
    ("https://localhost/hook", "private_address"),
    ("https://[::1]/hook", "private_address"),
    ("https://0.0.0.0/hook", "private_address"),
    ("https://[::]/hook", "private_address"),
    ("https://10.0.0.1/hook", "private_address"),
    ("https://10.255.255.254/hook", "private_address"),
    ("https://172.16.0.1/hook", "private_address"),
    ("https://172.31.255.254/hook", "private_address"),
    ("https://192.168.1.1/hook", "private_address"),
    ("https://169.254.169.254/latest/meta-data/", "private_address"),
    ("https://100.64.0.1/hook", "private_address"),
    ("https://100.127.255.254/hook", "private_address"),
    ("https://[::ffff:127.0.0.1]/hook", "private_address"),
    ("https://[::ffff:7f00:1]/hook", "private_address"),
    ("https://[fd00::1]/hook", "private_address"),
    ("https://[fe80::1]/hook", "private_address"),
    ("https://[64:ff9b::a00:1]/hook", "private_address"),
    ("https://[2002:7f00:1::1]/hook", "private_address"),
    ("https://224.0.0.1/hook", "private_address"),
    ("https://2130706433/hook", "ip_literal_form"),
    ("https://0x7f000001/hook", "ip_literal_form"),
    ("https://127.1/hook", "ip_literal_form"),
    ("https://0177.0.0.1/hook", "ip_literal_form"),
    ("https://0x7f.0.0.1/hook", "ip_literal_form"),
    ("https://127.0.0.1.5/hook", "ip_literal_form"),
    ("https://good@127.0.0.1/", "userinfo"),
    ("https://user:pass@hooks.example.com/", "userinfo"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://127.0.0.1:70/_GET%20/", "scheme"),
    ("ftp://hooks.example.com/", "scheme"),
    ("//hooks.example.com/hook", "scheme"),
    ("https://hooks.example.com/hook#frag", "fragment"),
    ("https:///hook", "host"),
    ("https://[::1/hook", "host"),
    ("https://exa mple.com/hook", "syntax"),
    ("https://hooks.example.com/a\\b", "syntax"),
    ("https://hooks.example.com:99999/", "port"),
    ("https://hooks.example.com:0/", "port"),
    ("https://bad_-.example..com/", "host"),
    ("https://hooks.example.com/" + "a" * MAX_URL_LENGTH, "too_long"),
]

#: Host names the fake DNS knows (attacks by name rather than by literal).
DNS = {
    "hooks.example.com": [PUBLIC_V4, PUBLIC_V6],
    "localhost": ["127.0.0.1", "::1"],
    "internal.example.com": ["10.0.0.5"],
    "metadata.example.com": ["169.254.169.254"],
    "mixed.example.com": [PUBLIC_V4, "127.0.0.1"],
    "mixed6.example.com": [PUBLIC_V6, "fd00::1"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "cgnat.example.com": ["100.64.1.1"],
}


@pytest.mark.parametrize(("url", "rule"), ATTACKS)
def test_attack_urls_are_rejected_with_their_rule(url: str, rule: str) -> None:
    with pytest.raises(InvalidWebhookUrl) as caught:
        check_url(url, allow_private=False, resolve=FakeResolver(DNS))
    assert caught.value.rule == rule
    assert f"[{rule}]" in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "internal.example.com",
        "metadata.example.com",
        "mixed.example.com",
        "mixed6.example.com",
        "mapped.example.com",
        "cgnat.example.com",
    ],
)
def test_names_resolving_to_any_private_address_are_rejected(host: str) -> None:
    resolver = FakeResolver(DNS)
    with pytest.raises(InvalidWebhookUrl) as caught:
        check_url(f"https://{host}/hook", allow_private=False, resolve=resolver)
    assert caught.value.rule == "private_address"


def test_localhost_names_are_rejected_without_asking_dns() -> None:
    with pytest.raises(InvalidWebhookUrl) as caught:
        check_url("https://api.localhost/hook", allow_private=False, resolve=no_dns)
    assert caught.value.rule == "private_address"


def test_unresolvable_host_is_rejected() -> None:
    with pytest.raises(InvalidWebhookUrl) as caught:
        check_url("https://nowhere.example.com/", allow_private=False, resolve=FakeResolver())
    assert caught.value.rule == "unresolvable"
    with pytest.raises(InvalidWebhookUrl) as caught:
        check_url("http://nowhere.example.com/", allow_private=True, resolve=FakeResolver())
    assert caught.value.rule == "unresolvable"


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://hooks.example.com/hook", "https://hooks.example.com/hook"),
        ("HTTPS://Hooks.Example.COM:443/hook?a=1&b=2", "https://hooks.example.com/hook?a=1&b=2"),
        ("https://hooks.example.com", "https://hooks.example.com/"),
        ("https://bücher.example/hook", "https://xn--bcher-kva.example/hook"),
        (f"https://{PUBLIC_V4}/hook", f"https://{PUBLIC_V4}/hook"),
        ("https://[2606:2800:220:1:0:0:0:1]/hook", "https://[2606:2800:220:1::1]/hook"),
    ],
)
def test_public_urls_pass_and_are_normalised(url: str, normalised: str) -> None:
    resolver = FakeResolver(
        {"hooks.example.com": [PUBLIC_V4], "xn--bcher-kva.example": [PUBLIC_V4]}
    )
    assert check_url(url, allow_private=False, resolve=resolver) == normalised


def test_ip_literals_are_not_sent_to_dns() -> None:
    assert check_url(f"https://{PUBLIC_V4}/", allow_private=False, resolve=no_dns)


def test_registration_resolves_the_host_with_its_port() -> None:
    resolver = FakeResolver({"hooks.example.com": [PUBLIC_V4]})
    check_url("https://hooks.example.com/hook", allow_private=False, resolve=resolver)
    assert resolver.calls == [("hooks.example.com", 443)]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123/hook",
        "http://localhost:8123/hook",
        "https://10.0.0.1:8443/hook",
        "http://[::1]:8123/hook",
    ],
)
def test_allow_private_permits_local_receivers(url: str) -> None:
    assert check_url(url, allow_private=True, resolve=FakeResolver(DNS)) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/hook",
        "http://good@127.0.0.1:8123/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "http://127.0.0.1:8123/hook#x",
    ],
)
def test_allow_private_still_rejects_malformed_urls(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl):
        check_url(url, allow_private=True, resolve=FakeResolver(DNS))


@pytest.mark.parametrize(
    ("ip", "public"),
    [
        (PUBLIC_V4, True),
        (PUBLIC_V6, True),
        ("8.8.8.8", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("2002:808:808::1", True),
        ("127.0.0.1", False),
        ("127.255.255.254", False),
        ("10.1.2.3", False),
        ("172.16.5.4", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("240.0.0.1", False),
        ("224.0.1.1", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("::", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::127.0.0.1", False),
        ("fd00::1", False),
        ("fc00::1", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),
        ("2001:db8::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
        ("64:ff9b::7f00:1", False),
        ("64:ff9b:1::1", False),
        ("2002:7f00:1::1", False),
        ("2002:a00:1::1", False),
        ("not-an-ip", False),
        ("127.1", False),
    ],
)
def test_is_public_address(ip: str, public: bool) -> None:
    assert is_public_address(ip) is public


# --------------------------------------------------------------------------------------------
# D22: delivery, DNS rebinding


def test_rebinding_to_loopback_is_blocked_before_any_connection(receiver: Receiver) -> None:
    resolver = FakeResolver(sequence=[[PUBLIC_V4], ["127.0.0.1"]])
    check_url(f"https://{HOOK_HOST}/hook", allow_private=False, resolve=resolver)

    with guarded_client(allow_private=False, timeout=2, resolve=resolver) as client:
        with pytest.raises(BlockedAddress) as caught:
            client.post(receiver.url(), content=b"{}")
    assert blocked(caught.value) == "127.0.0.1"
    assert caught.value.host == HOOK_HOST
    assert "blocked_ip" in str(caught.value)
    assert resolver.calls == [(HOOK_HOST, 443), (HOOK_HOST, receiver.port)]
    assert receiver.connections == 0
    assert receiver.requests == []


@pytest.mark.parametrize(
    "answer",
    [
        [PUBLIC_V4, "127.0.0.1"],
        ["127.0.0.1", PUBLIC_V4],
        [PUBLIC_V6, "::ffff:127.0.0.1"],
        [PUBLIC_V4, "169.254.169.254"],
    ],
)
def test_mixed_answers_are_blocked(receiver: Receiver, answer: list[str]) -> None:
    resolver = FakeResolver({HOOK_HOST: answer})
    with guarded_client(allow_private=False, timeout=2, resolve=resolver) as client:
        with pytest.raises(BlockedAddress):
            client.post(receiver.url(), content=b"{}")
    assert receiver.connections == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_targets_are_blocked_with_the_system_resolver(
    receiver: Receiver, host: str
) -> None:
    with guarded_client(allow_private=False, timeout=2) as client:
        with pytest.raises(BlockedAddress):
            client.get(receiver.url(host=host))
    assert receiver.connections == 0


def test_blocked_unwraps_exception_chains() -> None:
    def deliver() -> None:
        try:
            raise BlockedAddress(HOOK_HOST, "10.0.0.1")
        except BlockedAddress as inner:
            raise httpx.ConnectError("wrapped") from inner

    with pytest.raises(httpx.ConnectError) as caught:
        deliver()
    assert blocked(caught.value) == "10.0.0.1"
    assert blocked(httpx.ConnectError("plain")) is None


def test_connects_to_the_vetted_address(receiver: Receiver) -> None:
    resolver = FakeResolver({HOOK_HOST: ["127.0.0.1"]})
    with guarded_client(allow_private=True, timeout=2, resolve=resolver) as client:
        first = client.post(receiver.url(), content=b'{"a":1}')
        second = client.post(receiver.url(), content=b'{"a":2}')
    assert (first.status_code, second.status_code) == (200, 200)
    # A fresh resolution (and vetting) for every delivery: connections are never reused.
    assert resolver.calls == [(HOOK_HOST, receiver.port)] * 2
    assert receiver.connections == 2
    assert [(m, p) for m, p, _ in receiver.requests] == [("POST", "/hook")] * 2
    assert receiver.requests[0][2]["Host"] == f"{HOOK_HOST}:{receiver.port}"


def test_unresolvable_at_send_time_is_a_connect_error() -> None:
    with guarded_client(allow_private=False, timeout=2, resolve=FakeResolver()) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            client.post("https://gone.example.com/hook", content=b"{}")
    assert blocked(caught.value) is None


def test_no_cookies_are_kept(receiver: Receiver) -> None:
    resolver = FakeResolver({HOOK_HOST: ["127.0.0.1"]})
    with guarded_client(allow_private=True, timeout=2, resolve=resolver) as client:
        client.get(receiver.url())
        client.get(receiver.url())
        assert len(client.cookies.jar) == 0
    assert all("Cookie" not in headers for _, _, headers in receiver.requests)


def test_environment_proxies_are_ignored(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    resolver = FakeResolver({HOOK_HOST: ["127.0.0.1"]})
    with guarded_client(allow_private=True, timeout=2, resolve=resolver) as client:
        assert client.get(receiver.url()).status_code == 200


def test_tls_verifies_the_original_hostname(
    tls_receiver: tuple[Receiver, ssl.SSLContext],
) -> None:
    receiver, trust = tls_receiver
    resolver = FakeResolver({HOOK_HOST: ["127.0.0.1"], "other.example.test": ["127.0.0.1"]})
    with guarded_client(allow_private=True, timeout=2, resolve=resolver, verify=trust) as client:
        response = client.get(receiver.url(scheme="https"))
        assert response.status_code == 200
        assert receiver.sni == [HOOK_HOST]
        # Same IP, but the certificate does not name this host: verification must fail.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(receiver.url(host="other.example.test", scheme="https"))
    assert len(receiver.requests) == 1


# --------------------------------------------------------------------------------------------
# D23: redirects, and bounded responses


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(receiver: Receiver, status: int) -> None:
    receiver.behaviour = "redirect"
    receiver.redirect_status = status
    resolver = FakeResolver({HOOK_HOST: ["127.0.0.1"]})
    with guarded_client(allow_private=True, timeout=2, resolve=resolver) as client:
        response = client.post(receiver.url(), content=b"{}")
    assert response.status_code == status
    assert response.is_redirect
    assert response.headers["Location"] == f"http://127.0.0.1:{receiver.port}/admin"
    assert [path for _, path, _ in receiver.requests] == ["/hook"]


def _timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        action()
    return time.monotonic() - started


def test_slow_drip_body_is_cut_at_the_total_timeout(receiver: Receiver) -> None:
    receiver.behaviour = "drip_body"
    resolver = FakeResolver({HOOK_HOST: ["127.0.0.1"]})
    with guarded_client(allow_private=True, timeout=0.5, resolve=resolver) as client:

        def deliver() -> None:
            with client.stream("POST", receiver.url(), content=b"{}") as response:
                read_limited(response)

        elapsed = _timed(deliver)
    # Each byte arrives well within the per-read timeout; only the total deadline stops it.
    assert 0.4 < elapsed < 1.5


def test_slow_drip_headers_are_cut_at_the_total_timeout(receiver: Receiver) -> None:
    receiver.behaviour = "drip_headers"
    resolver = FakeResolver({HOOK_HOST: ["127.0.0.1"]})
    with guarded_client(allow_private=True, timeout=0.5, resolve=resolver) as client:
        elapsed = _timed(lambda: client.post(receiver.url(), content=b"{}"))
    assert 0.4 < elapsed < 1.5


def test_read_limited_caps_the_body(receiver: Receiver) -> None:
    receiver.behaviour = "big"
    resolver = FakeResolver({HOOK_HOST: ["127.0.0.1"]})
    with guarded_client(allow_private=True, timeout=2, resolve=resolver) as client:
        with client.stream("POST", receiver.url(), content=b"{}") as response:
            body = read_limited(response, limit=1000)
        with client.stream("POST", receiver.url(), content=b"{}") as response:
            default = read_limited(response)
    assert body == b"x" * 1000
    assert len(default) == 64 * 1024


def test_read_limited_honours_an_explicit_deadline(receiver: Receiver) -> None:
    receiver.behaviour = "drip_body"
    resolver = FakeResolver({HOOK_HOST: ["127.0.0.1"]})
    with guarded_client(allow_private=True, timeout=5, resolve=resolver) as client:

        def deliver() -> None:
            with client.stream("POST", receiver.url(), content=b"{}") as response:
                read_limited(response, deadline=time.monotonic() + 0.3)

        elapsed = _timed(deliver)
    assert elapsed < 1.5
