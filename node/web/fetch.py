"""WebFetcher: one GET of a stranger's URL, with every limit that needs (see the package)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import trio


class WebSourceError(Exception):
    """The URL gave no usable answer; the message says why (shown on the job)."""


@dataclass(frozen=True)
class WebLimits:
    """What one fetch may take: seconds in all, bytes of body, and whether loopback and
    private addresses may be fetched (a devnet's test servers; never on a public gateway)."""

    timeout: float = 5.0
    max_bytes: int = 65_536
    allow_private: bool = False
    concurrency: int = 8


@dataclass(frozen=True)
class WebResponse:
    """What a URL answered: its status, media type (lower case, without parameters) and body."""

    status: int
    content_type: str
    body: bytes


class WebFetcher:
    """GETs URLs under `limits`, a few at a time: a deadline that includes the wait for a slot,
    the body streamed and cut at the cap, no redirects, no compressed bodies, no proxy from the
    environment, and (unless allowed) no address outside the public internet, connecting to the
    very address checked."""

    def __init__(self, limits: WebLimits | None = None) -> None:
        self.limits = limits or WebLimits()
        # No proxy from the environment: it would connect by its own rules, after our address check.
        self._http = httpx.AsyncClient(follow_redirects=False, timeout=self.limits.timeout, trust_env=False)
        self._slots = trio.CapacityLimiter(self.limits.concurrency)

    async def __aenter__(self) -> WebFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def get(self, url: str, accept: str = "*/*") -> WebResponse:
        """GET `url` within the limits; WebSourceError says why there is no answer."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as error:
            raise WebSourceError(f"{url}: not a URL ({error})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or not parts.hostname.isascii():
            raise WebSourceError(f"{url}: only http and https URLs with an ASCII host are fetched")
        limits = self.limits
        with trio.move_on_after(limits.timeout):  # waiting for a slot counts too
            async with self._slots:
                if limits.allow_private:
                    return await self._get(url, url, accept)
                # Connect to the very address checked (a name could resolve elsewhere a moment
                # later); the name still goes in Host and, for https, SNI and the certificate check.
                address = await _public_address(parts.hostname, port)
                host = f"[{address}]" if ":" in address else address
                pinned = parts._replace(netloc=f"{host}:{port}").geturl()
                return await self._get(url, pinned, accept, parts.netloc, parts.hostname)
        raise WebSourceError(f"{url}: no complete answer within {limits.timeout:g} s")

    async def _get(
        self, url: str, target: str, accept: str, host: str | None = None, server_name: str | None = None
    ) -> WebResponse:
        """GET `target` (`url`, or `url` at the address checked: then with `host` as its Host
        header and `server_name` for TLS) within the limits."""
        limits = self.limits
        # Compressed bodies are refused: one small chunk may inflate to megabytes before the cap sees it.
        headers = {"accept": accept, "accept-encoding": "identity"} | ({"host": host} if host else {})
        extensions = {"sni_hostname": server_name} if server_name else {}
        try:
            async with self._http.stream("GET", target, headers=headers, extensions=extensions) as response:
                if response.headers.get("content-encoding", "identity") != "identity":
                    raise WebSourceError(f"{url}: a compressed body (asked for none)")
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > limits.max_bytes:
                        raise WebSourceError(f"{url}: the body is larger than {limits.max_bytes} bytes")
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                return WebResponse(response.status_code, kind, bytes(body))
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, UnicodeError) as error:
            raise WebSourceError(f"{url}: {type(error).__name__}: {error}") from None


async def _public_address(host: str, port: int) -> str:
    """The address to connect to for `host`: WebSourceError when it is, or resolves to, any
    address outside the public internet."""
    try:
        addresses = [info[4][0] for info in await trio.socket.getaddrinfo(host, port)]
    except OSError as error:
        raise WebSourceError(f"{host}: cannot resolve ({error})") from None
    for address in addresses:
        if not _public(ipaddress.ip_address(address.split("%")[0])):
            raise WebSourceError(f"{host} is a private or local address ({address}): not fetched")
    if not addresses:
        raise WebSourceError(f"{host}: resolves to no address")
    return addresses[0].split("%")[0]


# Prefixes whose last 32 bits are an IPv4 address: NAT64 and SIIT's IPv4-translated.
_TRANSLATED = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::ffff:0:0:0/96"))


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `address`, and any IPv4 address it embeds (mapped, translated, 6to4, Teredo,
    NAT64), is a public unicast one."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    if address.is_site_local:
        return False
    embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if any(address in prefix for prefix in _TRANSLATED):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
    return all(_public(inner) for inner in embedded if inner is not None)
