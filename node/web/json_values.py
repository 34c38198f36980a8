"""JsonValues: the number at a JSON path of a document fetched over HTTP (see the package)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
import trio

MAX_PATH_STEPS = 16
MAX_NESTING = 64
"""Arrays and objects nested deeper than this are refused before decoding: the C decoder
recurses, and under py_ecc's raised recursion limit a deep document would crash the process."""
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[([0-9]{1,6})\]")
_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # removed first: then a string is quotes around no quote,
_STRING = re.compile(rb'"[^"]*"')  # matched in linear time (the one-pass form backtracks on `"\"\"...`)
_BRACKET = re.compile(rb"[\[\]{}]")
_NUMBER = re.compile(r"-?[0-9]{1,78}(\.[0-9]{1,78})?")

# Compressed bodies are refused: one small chunk may inflate to megabytes before the cap sees it.
_HEADERS = {"accept": "application/json", "accept-encoding": "identity"}

JsonPath = tuple[str | int, ...]
"""Steps into a document: a key of an object, or an index into an array."""


class WebSourceError(Exception):
    """The URL gave no usable value; the message says why (shown on the job)."""


def parse_json_path(text: str) -> JsonPath:
    """`$.data.price` or `$.prices[0].usd` as steps; ValueError when it is not one."""
    if not text.startswith("$"):
        raise ValueError(f"{text!r} is not a JSON path: it starts with $")
    steps: list[str | int] = []
    position = 1
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise ValueError(f"{text!r}: expected .key or [index] at character {position + 1}")
        key, index = match.groups()
        steps.append(key if key is not None else int(index))
        position = match.end()
    if len(steps) > MAX_PATH_STEPS:
        raise ValueError(f"{text!r} has more than {MAX_PATH_STEPS} steps")
    return tuple(steps)


@dataclass(frozen=True)
class WebLimits:
    """What one fetch may take: seconds in all, bytes of body, and whether loopback and
    private addresses may be fetched (a devnet's test servers; never on a public gateway)."""

    timeout: float = 5.0
    max_bytes: int = 65_536
    allow_private: bool = False
    concurrency: int = 8


class JsonValues:
    """Fetches JSON documents under `limits`, a few at a time, and reads numbers out of them."""

    def __init__(self, limits: WebLimits | None = None) -> None:
        self.limits = limits or WebLimits()
        # No proxy from the environment: it would connect by its own rules, after our address check.
        self._http = httpx.AsyncClient(follow_redirects=False, timeout=self.limits.timeout, trust_env=False)
        self._slots = trio.CapacityLimiter(self.limits.concurrency)
        self._decoder = msgspec.json.Decoder(float_hook=Decimal)

    async def __aenter__(self) -> JsonValues:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def value(self, url: str, path: JsonPath) -> Decimal:
        """The number at `path` in the JSON document at `url` (a JSON number, or a string
        holding a decimal number), exactly; WebSourceError says why there is none."""
        document = await self.document(url)
        found: Any = document
        for step in path:
            if (isinstance(step, int) and isinstance(found, list) and step < len(found)) or (
                isinstance(step, str) and isinstance(found, dict) and step in found
            ):
                found = found[step]
            else:
                raise WebSourceError(f"{url}: the document has nothing at {_show(path)}")
        if isinstance(found, bool) or not isinstance(found, int | Decimal | str):
            raise WebSourceError(f"{url}: the value at {_show(path)} is not a number")
        if isinstance(found, str):
            if not _NUMBER.fullmatch(found):
                raise WebSourceError(f"{url}: the value at {_show(path)} is not a decimal number")
            return Decimal(found)
        if isinstance(found, Decimal) and not found.is_finite():
            raise WebSourceError(f"{url}: the value at {_show(path)} is not finite")
        return Decimal(found)

    async def document(self, url: str) -> Any:
        """The JSON document at `url`, fetched and decoded within the limits."""
        body = await self._fetch(url)
        if json_nesting(body) > MAX_NESTING:
            raise WebSourceError(f"{url}: the document nests deeper than {MAX_NESTING} levels")
        try:
            return self._decoder.decode(body)
        except msgspec.DecodeError as error:
            raise WebSourceError(f"{url}: the body is not JSON ({error})") from None

    async def _fetch(self, url: str) -> bytes:
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
                    return await self._get(url, url)
                # Connect to the very address checked (a name could resolve elsewhere a moment
                # later); the name still goes in Host and, for https, SNI and the certificate check.
                address = await _public_address(parts.hostname, port)
                host = f"[{address}]" if ":" in address else address
                pinned = parts._replace(netloc=f"{host}:{port}").geturl()
                return await self._get(url, pinned, parts.netloc, parts.hostname)
        raise WebSourceError(f"{url}: no complete answer within {limits.timeout:g} s")

    async def _get(
        self, url: str, target: str, host: str | None = None, server_name: str | None = None
    ) -> bytes:
        """GET `target` (`url`, or `url` at the address checked: then with `host` as its Host
        header and `server_name` for TLS) within the limits."""
        limits = self.limits
        headers = {**_HEADERS, "host": host} if host else _HEADERS
        extensions = {"sni_hostname": server_name} if server_name else {}
        try:
            async with self._http.stream("GET", target, headers=headers, extensions=extensions) as response:
                if response.status_code != 200:
                    raise WebSourceError(f"{url}: HTTP {response.status_code}")
                if response.headers.get("content-encoding", "identity") != "identity":
                    raise WebSourceError(f"{url}: a compressed body (asked for none)")
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind != "application/json" and not kind.endswith("+json"):
                    raise WebSourceError(f"{url}: content-type {kind or 'none'}, not application/json")
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > limits.max_bytes:
                        raise WebSourceError(f"{url}: the body is larger than {limits.max_bytes} bytes")
                return bytes(body)
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


def json_nesting(body: bytes) -> int:
    """How deeply `body`'s arrays and objects nest (string contents do not count)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub(b'""', _ESCAPE.sub(b"", body))):
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _show(path: JsonPath) -> str:
    return "$" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)
