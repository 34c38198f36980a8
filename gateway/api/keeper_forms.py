"""Keeper registration forms (gateway.keeper_forms): an operator files one; the admin lists them
and marks each approved or rejected."""

from __future__ import annotations

import typing
from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from quart import Blueprint, Response, request

from gateway.api.errors import ApiError, json_body
from gateway.api.operations import ADDRESS_SCHEMA, Operation, Operations, Param
from gateway.api.responses import PAGE_PARAMS, json, paged_answer, path_address
from gateway.api.views import hex_bytes
from gateway.clients import client_of
from gateway.keeper_forms import FormRefusedError, FormStatus, KeeperForm, KeeperFormRequest, KeeperForms

STATUSES: tuple[FormStatus, ...] = typing.get_args(FormStatus)


class KeeperFormView(msgspec.Struct, rename="camel", kw_only=True):
    """A keeper's registration form. `registryPublicKey`, `registryProof` and `peerIdBytes`
    are the key, its proof of possession and the peer id as OperatorRegistry.registerOperator
    takes them (EIP-2537 encodings; the peer id's multihash)."""

    operator: str
    bls_public_key: str
    proof_of_possession: str
    registry_public_key: str
    registry_proof: str
    peer_id: str
    peer_id_bytes: str
    name: str
    email: str
    listen_addrs: list[str]
    nonce: int
    submitted_at: float
    status: FormStatus
    decided_at: float | None
    note: str

    @classmethod
    def of(cls, form: KeeperForm) -> KeeperFormView:
        """The view of `form`."""
        return cls(
            operator=form.operator,
            bls_public_key=hex_bytes(form.bls_public_key),
            proof_of_possession=hex_bytes(form.proof_of_possession),
            registry_public_key=hex_bytes(form.registry_public_key),
            registry_proof=hex_bytes(form.registry_proof),
            peer_id=form.peer_id,
            peer_id_bytes=hex_bytes(form.peer_id_bytes),
            name=form.name,
            email=form.email,
            listen_addrs=form.listen_addrs,
            nonce=form.nonce,
            submitted_at=form.submitted_at,
            status=form.status,
            decided_at=form.decided_at,
            note=form.note,
        )


class KeeperFormAnswer(msgspec.Struct, rename="camel", kw_only=True):
    """One form."""

    form: KeeperFormView


class KeeperFormsPage(msgspec.Struct, rename="camel", kw_only=True):
    """A page of forms by operator address; `cursor` continues it (null: the last page)."""

    forms: list[KeeperFormView]
    cursor: str | None


class FormDecision(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """The admin's decision on a form, and a note for the record."""

    status: Literal["approved", "rejected"]
    note: Annotated[str, Meta(max_length=500)] = ""


OPERATOR = Param("address", "path", "the operator's account", ADDRESS_SCHEMA, required=True, kind="address")
STATUS = Param("status", "query", "only forms in this status", {"type": "string", "enum": list(STATUSES)})


def keeper_forms_blueprint(ops: Operations, forms: KeeperForms) -> Blueprint:
    """The keeper form routes over `forms`."""
    blueprint = Blueprint("keeper_forms", __name__)

    @ops.route(
        blueprint,
        Operation(
            "POST",
            "/api/keepers/form",
            "Ask to join the network as a keeper",
            "keepers",
            KeeperFormAnswer,
            status=201,
            body=KeeperFormRequest,
            errors=(409, 503),
            description="The operator account signs `RegisterKeeper(address operator, bytes "
            "blsPublicKey, string peerId, string name, string email, string[] listenAddrs, uint64 "
            "nonce, uint64 deadline)` in the gateway domain (see the introduction, Acting for an "
            'address; absent optional fields are signed as "" and []): a replay is a 409 naming '
            "the smallest nonce left. A new form replaces the operator's pending or rejected one; "
            "an approved form is final (409), and a BLS key is one operator's (409). Proofs of "
            "possession are checked within a budget per minute: 429 when your address (or IPv6 "
            "/64) or the operator had its share, 503 when the admin has too many forms waiting "
            "or all callers had the budget (both with Retry-After). A proof refused once is "
            "refused unchecked until its signature's deadline.",
        ),
    )
    async def submit_form() -> Response:
        wanted = await json_body(KeeperFormRequest)
        try:
            form = await forms.submit(wanted, client_of(request.remote_addr or ""))
        except FormRefusedError as refused:
            raise _api_error(refused) from None
        return json(KeeperFormAnswer(form=KeeperFormView.of(form)), 201)

    @ops.route(
        blueprint,
        Operation(
            "GET",
            "/api/admin/keepers/forms",
            "Keeper registration forms, by operator",
            "admin",
            KeeperFormsPage,
            params=(STATUS, *PAGE_PARAMS),
            access="admin",
        ),
    )
    async def list_forms() -> Response:
        status = typing.cast(FormStatus | None, request.args.get("status"))  # checked against STATUS
        return await paged_answer(
            lambda limit, after: forms.page(status, limit=limit, after=after),
            lambda page: KeeperFormsPage(
                forms=[KeeperFormView.of(f) for f in page.items], cursor=page.cursor
            ),
        )

    @ops.route(
        blueprint,
        Operation(
            "PUT",
            "/api/admin/keepers/forms/{address}",
            "Approve or reject an operator's form",
            "admin",
            KeeperFormAnswer,
            body=FormDecision,
            params=(OPERATOR,),
            errors=(404,),
            access="admin",
            description="Only the record: admitting the operator on chain is governance's "
            "registerOperator transaction (the form's registry fields are its arguments).",
        ),
    )
    async def decide_form(address: str) -> Response:
        operator = path_address(address)
        decision = await json_body(FormDecision)
        form = forms.decide(operator, decision.status, decision.note)
        if form is None:
            raise ApiError(404, f"no form of {operator}")
        return json(KeeperFormAnswer(form=KeeperFormView.of(form)))

    return blueprint


def _api_error(refused: FormRefusedError) -> ApiError:
    headers = {} if refused.retry_after is None else {"Retry-After": str(refused.retry_after)}
    return ApiError(refused.status, refused.problem, refused.field, headers)
