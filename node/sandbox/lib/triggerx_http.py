"""The web, for a script whose job allows it: GET through the keeper's proxy (the sandbox's one
way out, a unix socket). The keeper records every answer, and attesters replay them.

    import triggerx_http
    price = triggerx_http.get_json("https://api.example.com/price")["usd"]
"""

import json
import os
import socket


def get(url: str) -> tuple[int, bytes]:
    """The status and body the proxy answers for `url`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as proxy:
        proxy.connect(os.environ["TRIGGERX_HTTP_SOCKET"])
        proxy.sendall(f"GET {url} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := proxy.recv(65_536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def get_json(url: str):
    """The JSON document at `url`; RuntimeError unless the answer is 200."""
    status, body = get(url)
    if status != 200:
        raise RuntimeError(f"{url}: HTTP {status}: {body[:200].decode(errors='replace')}")
    return json.loads(body)
