"""What `triggerx-node operator` asks a gateway: filing the keeper form, the admin's forms and
decisions, and what the gateway counts of a keeper (gateway/api/keeper_forms.py, keepers.py)."""

from __future__ import annotations

import argparse
import time
from types import TracebackType
from typing import TypeVar

import httpx
import msgspec
from eth_account.signers.local import LocalAccount

from gateway.actions import gateway_domain
from gateway.api.keeper_forms import KeeperFormAnswer, KeeperFormsPage, KeeperFormView
from gateway.api.keepers import KeeperAnswer
from gateway.api.network import NetworkAnswer
from gateway.health import KeeperStatus
from gateway.keeper_forms import KeeperFormRequest, keeper_form_message
from node.commands import CommandError
from node.config import Genesis

FORM_DEADLINE_SECONDS = 600  # how long the form's signature is good for
_Answer = TypeVar("_Answer")


class _Refusal(msgspec.Struct):
    error: str = ""
    field: str | None = None


class Gateway:
    """A gateway's API at `url`, as the admin when given its `token`; an unreachable gateway
    or a refusal is an CommandError naming what was asked."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url, self.token = url, token
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        self._http = httpx.AsyncClient(base_url=url, headers=headers, timeout=15)

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self._http.aclose()

    async def request(
        self, method: str, path: str, answer: type[_Answer], *, body: bytes | None = None, **params: str
    ) -> _Answer:
        """The answer to `method path`, decoded as `answer`."""
        reply = await self._reply(method, path, body, params)
        if reply.status_code == 404:
            raise self._refused(method, path, reply)
        return self._decoded(path, reply, answer)

    async def keeper(self, address: str) -> KeeperStatus | None:
        """What the gateway knows of keeper `address` (None: not heard from)."""
        path = f"/api/keepers/address/{address}"
        reply = await self._reply("GET", path, None, {})
        return None if reply.status_code == 404 else self._decoded(path, reply, KeeperAnswer).keeper

    async def _reply(
        self, method: str, path: str, body: bytes | None, params: dict[str, str]
    ) -> httpx.Response:
        headers = {} if body is None else {"Content-Type": "application/json"}
        try:
            reply = await self._http.request(method, path, content=body, params=params, headers=headers)
        except httpx.HTTPError as error:
            raise CommandError(f"gateway {self.url} unreachable: {error or type(error).__name__}") from None
        if reply.status_code >= 400 and reply.status_code != 404:
            raise self._refused(method, path, reply)
        return reply

    def _refused(self, method: str, path: str, reply: httpx.Response) -> CommandError:
        try:
            refusal = msgspec.json.decode(reply.content, type=_Refusal)
        except msgspec.DecodeError:
            refusal = _Refusal(reply.text[:200])
        where = f" ({refusal.field})" if refusal.field else ""
        return CommandError(
            f"the gateway refused {method} {path}: HTTP {reply.status_code}: {refusal.error}{where}"
        )

    def _decoded(self, path: str, reply: httpx.Response, answer: type[_Answer]) -> _Answer:
        try:
            return msgspec.json.decode(reply.content, type=answer)
        except msgspec.DecodeError as error:
            raise CommandError(f"{self.url}{path} is not a TriggerX gateway's answer: {error}") from None

    async def decide(self, operator: str, status: str, note: str) -> KeeperFormView:
        """The admin's decision on `operator`'s form."""
        body = msgspec.json.encode({"status": status, "note": note})
        path = f"/api/admin/keepers/forms/{operator}"
        return (await self.request("PUT", path, KeeperFormAnswer, body=body)).form


async def keeper_form(gateway: Gateway, operator: str) -> KeeperFormView | None:
    """`operator`'s form at `gateway` (the admin's to read), if it has one."""
    cursor: str | None = None
    while True:
        paging = {"limit": "500"} | ({} if cursor is None else {"cursor": cursor})
        page = await gateway.request("GET", "/api/admin/keepers/forms", KeeperFormsPage, **paging)
        for form in page.forms:
            if form.operator == operator:
                return form
        if page.cursor is None:
            return None
        cursor = page.cursor


async def submit_form(
    gateway: Gateway,
    genesis: Genesis | None,
    account: LocalAccount,
    public_key: str,
    proof: bytes,
    peer_id: str,
    args: argparse.Namespace,
) -> KeeperFormView:
    """File `account`'s keeper form, signed in the gateway domain of the genesis' chain and hub
    (without a genesis: the ones the gateway names, GET /api/network)."""
    chain_id, hub = (genesis.chain_id, genesis.contracts.task_execution_hub) if genesis else (None, None)
    if chain_id is None or hub is None:
        network = await gateway.request("GET", "/api/network", NetworkAnswer)
        chain_id, hub = network.chain_id, network.hub
    now = time.time()
    request = KeeperFormRequest(
        operator=account.address,
        bls_public_key=public_key,
        proof_of_possession="0x" + proof.hex(),
        peer_id=peer_id,
        name=args.name,
        email=args.email,
        listen_addrs=args.listen_addr,
        nonce=int(now * 1000),  # larger than any earlier form's, as the gateway asks
        deadline=int(now) + FORM_DEADLINE_SECONDS,
        signature="",
    )
    signature = keeper_form_message(request, gateway_domain(chain_id, hub)).sign(account)
    signed = msgspec.structs.replace(request, signature="0x" + signature.hex())
    body = msgspec.json.encode(signed)
    return (await gateway.request("POST", "/api/keepers/form", KeeperFormAnswer, body=body)).form
