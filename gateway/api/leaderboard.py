"""Leaderboards: keepers and users by points (gateway.points has the rules), page by page, and
searched by address with their rank."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from quart import Blueprint, Response, request

from gateway.api.errors import ApiError
from gateway.api.operations import Operation, Operations, Param
from gateway.api.responses import PAGE_PARAMS, json, paged_answer
from gateway.api.users import checked_address
from gateway.points import (
    POINTS_PER_ATTESTED,
    POINTS_PER_COMPLETED_TASK,
    POINTS_PER_EXECUTED,
    POINTS_PER_JOB,
    RANKED,
    SEARCH_MATCHES,
    KeeperTally,
    Points,
)
from gateway.users import UserRecord

R = TypeVar("R", KeeperTally, UserRecord)
_PREFIX = re.compile(r"0x[0-9a-fA-F]{1,40}")
SEARCH = Param(
    "address",
    "query",
    f"a whole address, or the start of one (0x and 1 to 39 hex digits, any case; at most "
    f"{SEARCH_MATCHES} matches, by address)",
    {"type": "string", "pattern": "^0x[0-9a-fA-F]{1,40}$"},
    required=True,
)
ORDER = (
    "Most points first, equal points by address; only entries with points are listed. Points are "
    "counted once per task when the ledger records it completed."
)
KEEPER_RULES = (
    f"A keeper gets {POINTS_PER_EXECUTED} points for each task it executed (the performer of the "
    f"approved attempt) and {POINTS_PER_ATTESTED} for each it attested (its vote is in another "
    f"keeper's approval). {ORDER}"
)
USER_RULES = (
    f"A user gets {POINTS_PER_COMPLETED_TASK} point for each completed task of their jobs, and "
    f"{POINTS_PER_JOB} for each job of theirs at its first completed task (a job counts once it "
    f"ran, not when created). {ORDER}"
)
RANK_RULE = (
    f"`rank` is the place on the board (1: the most points; at equal points, by address), counted "
    f"over the first {RANKED} places: null further down. An exact address that is not on the board "
    "is a 404; a prefix may match nothing."
)


class KeeperEntry(msgspec.Struct, rename="camel", kw_only=True):
    """A keeper on the leaderboard: its account, operator id (null: no longer registered), points
    and counts."""

    address: str
    operator_id: int | None
    points: int
    tasks_executed: int
    tasks_attested: int


class RankedKeeper(KeeperEntry, kw_only=True):
    """A keeper found by a search, with its rank (null: beyond the ranked places)."""

    rank: int | None


class UserEntry(msgspec.Struct, rename="camel", kw_only=True):
    """A user on the leaderboard: address, points and counts."""

    address: str
    points: int
    jobs_run: int
    tasks_completed: int


class RankedUser(UserEntry, kw_only=True):
    """A user found by a search, with its rank (null: beyond the ranked places)."""

    rank: int | None


class KeepersBoard(msgspec.Struct, rename="camel", kw_only=True):
    """A page of the keepers' leaderboard; `cursor` fetches the next (null: the last page)."""

    keepers: list[KeeperEntry]
    cursor: str | None


class UsersBoard(msgspec.Struct, rename="camel", kw_only=True):
    """A page of the users' leaderboard; `cursor` fetches the next (null: the last page)."""

    users: list[UserEntry]
    cursor: str | None


class KeeperMatches(msgspec.Struct, rename="camel", kw_only=True):
    """The keepers on the board that a search found, by address."""

    keepers: list[RankedKeeper]


class UserMatches(msgspec.Struct, rename="camel", kw_only=True):
    """The users on the board that a search found, by address."""

    users: list[RankedUser]


def search_text() -> str:
    """The `address` query parameter: a whole address (checked, checksummed) or a prefix."""
    raw = request.args.get("address")
    if raw is None:
        raise ApiError(400, "give the address, or its start, to search for", "address")
    if len(raw) == 42:
        return checked_address(raw)
    if _PREFIX.fullmatch(raw) is None:
        raise ApiError(400, f"expected 0x and 1 to 40 hex digits, not {raw[:50]!r}", "address")
    return raw


async def found(search: Callable[[str], Awaitable[list[tuple[R, int | None]]]]) -> list[tuple[R, int | None]]:
    """What `search` finds for the request's `address`; 404 for a whole address not on the board."""
    text = search_text()
    matches = await search(text)
    if not matches and len(text) == 42:
        raise ApiError(404, f"{text} is not on this leaderboard (no points yet)")
    return matches


def leaderboard_blueprint(ops: Operations, points: Points) -> Blueprint:
    """The leaderboard routes, over `points`."""
    blueprint = Blueprint("leaderboard", __name__)

    def keeper_entry(tally: KeeperTally) -> KeeperEntry:
        return KeeperEntry(
            address=tally.address,
            operator_id=points.operator_id(tally.address),
            points=tally.points,
            tasks_executed=tally.tasks_executed,
            tasks_attested=tally.tasks_attested,
        )

    def user_entry(user: UserRecord) -> UserEntry:
        return UserEntry(
            address=user.address,
            points=user.points,
            jobs_run=user.jobs_run,
            tasks_completed=user.tasks_completed,
        )

    @ops.route(
        blueprint,
        Operation(
            "GET",
            "/api/leaderboard/keepers",
            "Keepers by points",
            "leaderboard",
            KeepersBoard,
            params=PAGE_PARAMS,
            description=KEEPER_RULES,
        ),
    )
    async def keepers_board() -> Response:
        return await paged_answer(
            points.keeper_board.page,
            lambda page: KeepersBoard(keepers=[keeper_entry(t) for t in page.items], cursor=page.cursor),
        )

    @ops.route(
        blueprint,
        Operation(
            "GET",
            "/api/leaderboard/keepers/search",
            "Keepers on the leaderboard by address, with their rank",
            "leaderboard",
            KeeperMatches,
            params=(SEARCH,),
            errors=(404,),
            description=f"{KEEPER_RULES} {RANK_RULE}",
        ),
    )
    async def search_keepers() -> Response:
        matches = await found(points.keeper_board.search)
        ranked = [
            RankedKeeper(**msgspec.structs.asdict(keeper_entry(tally)), rank=rank) for tally, rank in matches
        ]
        return json(KeeperMatches(keepers=ranked))

    @ops.route(
        blueprint,
        Operation(
            "GET",
            "/api/leaderboard/users",
            "Users by points",
            "leaderboard",
            UsersBoard,
            params=PAGE_PARAMS,
            description=USER_RULES,
        ),
    )
    async def users_board() -> Response:
        return await paged_answer(
            points.user_board.page,
            lambda page: UsersBoard(users=[user_entry(u) for u in page.items], cursor=page.cursor),
        )

    @ops.route(
        blueprint,
        Operation(
            "GET",
            "/api/leaderboard/users/search",
            "Users on the leaderboard by address, with their rank",
            "leaderboard",
            UserMatches,
            params=(SEARCH,),
            errors=(404,),
            description=f"{USER_RULES} {RANK_RULE}",
        ),
    )
    async def search_users() -> Response:
        matches = await found(points.user_board.search)
        ranked = [RankedUser(**msgspec.structs.asdict(user_entry(user)), rank=rank) for user, rank in matches]
        return json(UserMatches(users=ranked))

    return blueprint
