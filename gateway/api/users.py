"""Users: register an address, read it, set its email (with the address's signature), list its jobs."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from msgspec import Meta
from quart import Blueprint, Response

from gateway.actions import MAX_NONCE, SET_EMAIL, ActionRefusedError, SignedActions
from gateway.api.errors import ApiError, json_body
from gateway.api.jobs import job_view
from gateway.api.operations import ADDRESS_SCHEMA, Link, Operation, Operations, Param
from gateway.api.responses import PAGE_PARAMS, json, paged_answer, path_address
from gateway.api.views import JobsPage
from gateway.storage import GatewayStorage
from gateway.users import (
    EMAIL_PATTERN,
    MAX_EMAIL_LENGTH,
    MAX_REGISTERED,
    RegistrationsFullError,
    UserRecord,
    Users,
    email_hash,
    email_problem,
)

Address = Annotated[str, Meta(pattern="^0x[0-9a-fA-F]{40}$", description="checksummed, or all one case")]
ADDRESS = Param("address", "path", "the user's address", ADDRESS_SCHEMA, required=True, kind="address")
USER_LINKS = (
    Link("user", "get_api_users_address", {"address": "$response.body#/user/address"}),
    Link("jobs", "get_api_users_address_jobs", {"address": "$response.body#/user/address"}),
)
SET_EMAIL_RULES = (
    "The address's EIP-712 signature in the gateway domain (see the introduction, Acting for an "
    "address): `SetEmail(address user, bytes32 emailHash, uint64 nonce, uint64 deadline)` with "
    "`emailHash = keccak256(utf8(email))`, or zero with `email: null` to remove the email. The "
    "nonce must be larger than any the address used before (a replay is a 409 naming the smallest "
    "nonce left) and at most 2^63 - 1; the deadline in the future, at most an hour away. A signature "
    "by another address is a 400 naming `$.signature`. The email is stored, never shown: answers "
    "say `emailSet`."
)


def checked_address(raw: str, field: str = "address") -> str:
    """`path_address(raw, field)`, and a 400 for a mixed-case address with a wrong EIP-55 checksum
    (eth_utils 6's is_address, which path_address asks, no longer checks it)."""
    address = path_address(raw, field)
    digits = raw[2:]
    if digits not in (digits.lower(), digits.upper()) and raw != address:
        raise ApiError(400, f"{raw} has a wrong EIP-55 checksum (a typo?)", field)
    return address


class RegisterUser(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """An address to register."""

    address: Address


class SetEmailRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """A user's email (null: remove it) and the user's signed `SetEmail`."""

    address: Address
    email: Annotated[str, Meta(max_length=MAX_EMAIL_LENGTH, pattern=EMAIL_PATTERN)] | None
    email_hash: Annotated[str, Meta(pattern="^0x[0-9a-fA-F]{64}$")]
    nonce: Annotated[int, Meta(ge=0, le=MAX_NONCE, description="larger than the address's last nonce")]
    deadline: Annotated[int, Meta(ge=0, le=MAX_NONCE, description="unix seconds, at most an hour ahead")]
    signature: Annotated[str, Meta(pattern="^0x[0-9a-fA-F]{130}$", description="65 bytes r ‖ s ‖ v")]


class UserView(msgspec.Struct, rename="camel", kw_only=True):
    """A user: its address, when first seen, whether an email is set (the email itself is never
    shown), the jobs of theirs that completed a task, their completed tasks, and their points
    (GET /api/leaderboard/users says how they are earned)."""

    address: str
    created_at: float
    email_set: bool
    jobs_run: int
    tasks_completed: int
    points: int

    @classmethod
    def of(cls, user: UserRecord) -> UserView:
        """The public view of `user`."""
        return cls(
            address=user.address,
            created_at=user.created_at,
            email_set=user.email is not None,
            jobs_run=user.jobs_run,
            tasks_completed=user.tasks_completed,
            points=user.points,
        )


class UserAnswer(msgspec.Struct, rename="camel", kw_only=True):
    """One user."""

    user: UserView


def users_blueprint(
    ops: Operations, storage: GatewayStorage, users: Users, actions: SignedActions
) -> Blueprint:
    """The user routes; `actions` checks the signatures of email changes."""
    blueprint = Blueprint("users", __name__)

    def known(raw: str) -> UserRecord:
        user = users.get(checked_address(raw))
        if user is None:
            raise ApiError(404, f"no user {raw}")
        return user

    @ops.route(
        blueprint,
        Operation(
            "POST",
            "/api/users",
            "Register an address as a user",
            "users",
            UserAnswer,
            status=201,
            body=RegisterUser,
            errors=(503,),
            same_answer=((200, "the address was a user already: its record"),),
            links=USER_LINKS,
            description="201 with the new user; an address already known is answered 200 with its "
            "record. Owners of jobs are users without registering. Registering takes no signature, "
            f"so a gateway registers at most {MAX_REGISTERED} addresses (then 503): an address "
            "still becomes a user with its first job or its signed email.",
        ),
    )
    async def register_user() -> Response:
        wanted = await json_body(RegisterUser)
        try:
            user, created = users.register(checked_address(wanted.address, "$.address"), time.time())
        except RegistrationsFullError as full:
            raise ApiError(503, f"{full}: create a job or set an email to become a user") from None
        return json(UserAnswer(user=UserView.of(user)), 201 if created else 200)

    @ops.route(
        blueprint,
        Operation(
            "GET",
            "/api/users/address/{address}",
            "One user",
            "users",
            UserAnswer,
            params=(ADDRESS,),
            errors=(404,),
        ),
    )
    async def get_user(address: str) -> Response:
        return json(UserAnswer(user=UserView.of(known(address))))

    @ops.route(
        blueprint,
        Operation(
            "PUT",
            "/api/users/email",
            "Set or remove a user's email, signed by the user",
            "users",
            UserAnswer,
            body=SetEmailRequest,
            errors=(409,),
            links=USER_LINKS,
            description=SET_EMAIL_RULES,
        ),
    )
    async def set_email() -> Response:
        wanted = await json_body(SetEmailRequest)
        address = checked_address(wanted.address, "$.address")
        if wanted.email is not None and (problem := email_problem(wanted.email)) is not None:
            raise ApiError(400, problem, "$.email")
        signed_hash = bytes.fromhex(wanted.email_hash[2:])
        if signed_hash != email_hash(wanted.email):
            expected = "zero, to remove the email" if wanted.email is None else "keccak256(utf8(email))"
            raise ApiError(400, f"is not {expected}", "$.emailHash")
        values = {
            "user": address,
            "emailHash": signed_hash,
            "nonce": wanted.nonce,
            "deadline": wanted.deadline,
        }
        now = time.time()
        try:
            signature = bytes.fromhex(wanted.signature[2:])
            verified = await actions.verify(actions.message(SET_EMAIL, values), signature, address, now)
            # No await from here to the commit: the nonce is checked and used in one batch.
            with storage.store.batch() as batch:
                actions.consume(verified, batch)
                user = users.set_email(address, wanted.email, wanted.nonce, now, batch)
        except ActionRefusedError as refused:
            raise ApiError(refused.status, refused.reason, refused.field) from None
        return json(UserAnswer(user=UserView.of(user)))

    @ops.route(
        blueprint,
        Operation(
            "GET",
            "/api/users/address/{address}/jobs",
            "A user's jobs, by id",
            "users",
            JobsPage,
            params=(ADDRESS, *PAGE_PARAMS),
            errors=(404,),
        ),
    )
    async def jobs_of_user(address: str) -> Response:
        user = known(address)
        return await paged_answer(
            lambda limit, after: storage.jobs.by_index("owner", user.address, limit=limit, after=after),
            lambda page: JobsPage(jobs=[job_view(storage, job) for job in page.items], cursor=page.cursor),
        )

    return blueprint
