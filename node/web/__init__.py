"""Reading one number out of a JSON document on the web, with every limit a stranger's URL needs.

A condition job may name an HTTP source (protocol/triggers/condition.py): the gateway and the
attesters then fetch a URL the job's owner chose. `JsonValues` fetches it with a deadline,
a size cap streamed (never buffered whole), a content-type check, no redirects, a nesting
bound checked before decoding, and (unless allowed) no loopback, private or link-local
address: a public gateway must not probe its own network for strangers.

A script's HTTP proxy (node/sandbox/proxy.py) fetches through the same `WebFetcher`.

Public API: WebFetcher (with WebLimits, WebResponse), JsonValues, JsonPath (parse_json_path),
WebSourceError, and json_nesting (how deep a JSON text nests, found in linear time without
decoding it).
"""

from node.web.fetch import WebFetcher, WebLimits, WebResponse, WebSourceError
from node.web.json_values import JsonPath, JsonValues, json_nesting, parse_json_path

__all__ = [
    "JsonPath",
    "JsonValues",
    "WebFetcher",
    "WebLimits",
    "WebResponse",
    "WebSourceError",
    "json_nesting",
    "parse_json_path",
]
