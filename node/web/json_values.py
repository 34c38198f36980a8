"""JsonValues: the number at a JSON path of a document fetched over HTTP (see the package)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import msgspec

from node.web.fetch import WebFetcher, WebLimits, WebSourceError

MAX_PATH_STEPS = 16
MAX_NESTING = 64
"""Arrays and objects nested deeper than this are refused before decoding: the C decoder
recurses, and under py_ecc's raised recursion limit a deep document would crash the process."""
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[([0-9]{1,6})\]")
_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # removed first: then a string is quotes around no quote,
_STRING = re.compile(rb'"[^"]*"')  # matched in linear time (the one-pass form backtracks on `"\"\"...`)
_BRACKET = re.compile(rb"[\[\]{}]")
_NUMBER = re.compile(r"-?[0-9]{1,78}(\.[0-9]{1,78})?")

JsonPath = tuple[str | int, ...]
"""Steps into a document: a key of an object, or an index into an array."""


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


class JsonValues:
    """Fetches JSON documents under `limits`, a few at a time, and reads numbers out of them."""

    def __init__(self, limits: WebLimits | None = None) -> None:
        self.fetcher = WebFetcher(limits)
        self._decoder = msgspec.json.Decoder(float_hook=Decimal)

    async def __aenter__(self) -> JsonValues:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.fetcher.aclose()

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
        response = await self.fetcher.get(url, accept="application/json")
        if response.status != 200:
            raise WebSourceError(f"{url}: HTTP {response.status}")
        kind = response.content_type
        if kind != "application/json" and not kind.endswith("+json"):
            raise WebSourceError(f"{url}: content-type {kind or 'none'}, not application/json")
        return response.body


def json_nesting(body: bytes) -> int:
    """How deeply `body`'s arrays and objects nest (string contents do not count)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub(b'""', _ESCAPE.sub(b"", body))):
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _show(path: JsonPath) -> str:
    return "$" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)
