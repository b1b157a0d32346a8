"""The one way the provider fetches a link it did not write itself: input images given by URL, vendor output links,
refreshed links and the NSFW scorer's downloads.

A link comes from a DAG's inputs or from a vendor's answer (gpt.ge is a relay a third party runs), so it may point
at the worker's own network: a cloud credential endpoint (``169.254.169.254``), a database on ``10.0.0.5``, a
service on loopback. A `FetchPolicy` decides before any connection is made:

- http(s) only;
- a host whose address is loopback, private, link-local, unique-local, multicast, reserved or unspecified (IPv4-mapped
  and 6to4 IPv6 forms included) is fetched only when its origin (scheme, host, port) is the vendor connection's own
  (an emulator on ``127.0.0.1``) or is listed in ``[genmedia] allowed_private_origins``;
- every redirect hop is checked the same way, at most `MAX_REDIRECTS` of them;
- the host name is resolved once per hop and the connection goes to the address that was checked (DNS rebinding
  cannot swap it), while the ``Host`` header, TLS SNI and certificate verification still use the host name.

A refusal is a `LinkRefusedError`, which names the address class and the setting, and fails its task without retry.
Proxy settings of the environment (``HTTPS_PROXY``, ...) are not used for these fetches: a proxy would resolve the
name again.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from airflow_provider_genmedia.exceptions import GenMediaValidationError, LinkRefusedError
from airflow_provider_genmedia.urls import check_http_url, public_url

#: The Airflow setting that lists the non-public origins a fetch may reach besides the connection's own.
ALLOWED_ORIGINS_OPTION = "allowed_private_origins"
SETTING = f"[genmedia] {ALLOWED_ORIGINS_OPTION}"
#: Redirects followed from one link (each one checked) before the fetch is refused.
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Resolves a host name and port to the addresses to connect to (`system_resolver` by default).
Resolver = Callable[[str, int], Sequence[str]]


class Origin(NamedTuple):
    """A URL's origin: scheme, host (lower case, IPv6 without brackets) and port (the scheme's default if none)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an http(s) URL; a `ValueError` for anything else."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"{public_url(url)!r} is not an http(s) URL")
        return cls(scheme, parts.hostname.lower().rstrip("."), parts.port or _DEFAULT_PORTS[scheme])

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_origins(text: str | None, field: str = SETTING) -> frozenset[Origin]:
    """The origins of a comma-separated list such as ``http://10.0.0.5:9000, https://minio.internal``; an entry that is
    not a bare http(s) origin (a path, a query) is an error naming ``field``."""
    origins = set()
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            origin = Origin.of(entry)
            if urlsplit(entry).path.strip("/") or urlsplit(entry).query:
                raise ValueError("an origin has no path or query")
        except ValueError as error:
            raise GenMediaValidationError(
                field, f"{entry!r} is not an origin like http://10.0.0.5:9000 ({error})"
            ) from None
        origins.add(origin)
    return frozenset(origins)


def address_class(address: IPAddress) -> str | None:
    """What kind of non-public address ``address`` is (``"loopback"``, ``"private"``, ``"link-local"``,
    ``"unique-local"``, ``"multicast"``, ``"unspecified"``, ``"reserved"``), or None for a public one. An IPv6 address
    that carries an IPv4 one (mapped, 6to4, NAT64) is judged by that too."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # another spelling of an IPv4 address
            return address_class(address.ipv4_mapped)
        embedded = address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and (kind := address_class(embedded)) is not None:
            return kind
    checks: tuple[tuple[str, bool], ...] = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unique-local", isinstance(address, ipaddress.IPv6Address) and address in _UNIQUE_LOCAL),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("reserved", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system resolves ``host`` to (numeric forms such as ``2130706433`` included)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Pinned:
    """A checked link: its origin and the one address the fetch connects to."""

    origin: Origin
    address: str


@dataclass(frozen=True)
class FetchPolicy:
    """Which origins a fetch may reach although they resolve to a non-public address: the vendor connection's own
    (``own``) and those of ``[genmedia] allowed_private_origins`` (``allowed``); ``resolver`` looks host names up."""

    own: Origin | None = None
    allowed: frozenset[Origin] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def for_connection(cls, base_url: str | None, allowed: str | None = None) -> FetchPolicy:
        """The policy of a vendor connection whose base URL is ``base_url`` (None: no connection), with the origins of
        ``allowed``, or of the Airflow setting when it is None."""
        if allowed is None:
            from airflow.configuration import conf

            allowed = conf.get("genmedia", ALLOWED_ORIGINS_OPTION, fallback="")
        return cls(Origin.of(base_url) if base_url else None, parse_origins(allowed))

    def trusts(self, origin: Origin) -> bool:
        """True when ``origin`` may be fetched whatever its address."""
        return origin == self.own or origin in self.allowed

    def check(self, url: str, field: str = "url") -> Pinned:
        """Resolve the link's host once and return the address to connect to; a `LinkRefusedError` when it is not
        public and its origin is not trusted. A host that does not resolve is a `requests.ConnectionError`."""
        check_http_url(url, field)
        origin = Origin.of(url)
        try:
            addresses = self.resolver(origin.host, origin.port)
        except OSError as error:
            raise requests.ConnectionError(f"{origin.host} could not be resolved ({error})") from None
        if not addresses:
            raise requests.ConnectionError(f"{origin.host} resolves to no address")
        if not self.trusts(origin):
            for address in addresses:
                kind = address_class(ipaddress.ip_address(address.partition("%")[0]))
                if kind is not None:
                    raise LinkRefusedError(
                        f"{public_url(url)} resolves to {address}, a {kind} address, and was not fetched: "
                        f"only the vendor connection's own origin ({self.own or 'none'}) or an origin listed in "
                        f"{SETTING} may be fetched at such an address"
                    )
        return Pinned(origin, addresses[0])


class _PinnedAdapter(HTTPAdapter):
    """An adapter that checks every request with its policy and connects to the checked address; the host name stays
    in the ``Host`` header, the TLS SNI and the certificate check."""

    def __init__(self, policy: FetchPolicy) -> None:
        super().__init__()
        self.policy = policy

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[Any, Any]:
        """requests' pool key, its host replaced by the checked address (the extension point requests documents)."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pinned = self.policy.check(str(request.url))
        pinned_params: dict[str, Any] = {**host_params, "host": pinned.address}
        tls: dict[str, Any] = {**pool_kwargs}
        if pinned.origin.scheme == "https":
            tls.update(server_hostname=pinned.origin.host, assert_hostname=pinned.origin.host)
        return pinned_params, tls

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        """Send the URL's own host (and port) as ``Host``, not the address connected to."""
        request.headers["Host"] = urlsplit(str(request.url)).netloc.rpartition("@")[2]


class SafeSession:
    """A requests session whose every request, redirect hops included, goes through a `FetchPolicy`.

    Use it as a context manager, or `close` it.
    """

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self._session = requests.Session()
        self._session.trust_env = False  # a proxy from the environment would resolve the host again
        adapter = _PinnedAdapter(policy)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def get(self, url: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """GET ``url``, following at most `MAX_REDIRECTS` redirects, each checked before it is fetched; further
        keyword arguments go to `requests.Session.get` (``stream``, ``timeout``)."""
        for _ in range(MAX_REDIRECTS + 1):
            check_http_url(url)  # a redirect to file:// or ftp:// is refused here, before requests looks for an adapter
            response = self._session.get(url, headers=headers, allow_redirects=False, **kwargs)
            location = response.headers.get("Location")
            if not response.is_redirect or not location:
                return response
            response.close()
            url = urljoin(url, location)
        raise LinkRefusedError(f"{public_url(url)}: more than {MAX_REDIRECTS} redirects, not followed")

    def close(self) -> None:
        """Close the session's connections."""
        self._session.close()

    def __enter__(self) -> SafeSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
