"""Keeper registration forms: an operator asks to join the network (`POST /api/keepers/form`),
the gateway's admin reads the requests and marks each approved or rejected; admitting the
operator on chain (OperatorRegistry.registerOperator, governance's transaction) stays the
admin's. A form carries what that call needs, checked here so the admin never sends one
that reverts: the BLS public key with its proof of possession (verified, and kept in both
encodings), the libp2p peer id (kept as the registry stores it), and the operator account's
EIP-712 `RegisterKeeper` signature over all of it in the gateway domain, so nobody files a
form for an account that is not theirs.

Anyone may submit, so a form costs the gateway little: at most MAX_PENDING pending forms are
kept (one per operator: a new form replaces the operator's pending one), and the proof of
possession, the one costly check (~0.5 s of pure-Python pairing), runs one at a time, after
every cheap check passed: the operator's signature, and the key and the proof decoded as
points of G1 and G2 (on the curve, in the subgroup: ~15 ms, node.bls.subgroups). Its budget
is `checks_per_minute` for all callers, and no client (gateway.clients: an IPv4 address or an
IPv6 /64) nor operator may spend more than its share of it (`checks_per_client`,
`checks_per_operator`), so that one party cannot keep everyone else's forms out. A refused
form uses no nonce and could be sent again; its proof is remembered as refused (with the
signature that carried it) until the signature's deadline, so a replay is refused unchecked.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated, Literal

import msgspec
import trio
from eth_utils import is_address, to_checksum_address
from msgspec import Meta

from gateway.actions import MAX_NONCE, ActionRefusedError, ActionType, SignedActions, VerifiedAction
from node.bls import public_key_to_eip2537, signature_to_eip2537, verify_possession
from node.bls.subgroups import g1_in_subgroup, g2_in_subgroup
from node.chain import Domain, TypedMessage
from node.mesh import parse_peer_addr
from node.store import KEEPERS, Index, Page, Store, Table

FormStatus = Literal["pending", "approved", "rejected"]
MAX_PENDING = 10_000
MAX_LISTEN_ADDRS = 8  # as many as the gateway keeps from a heartbeat (gateway.health)
CHECK_WINDOW = 60.0  # seconds the proof-check budgets count over
REGISTER_KEEPER = ActionType(
    "RegisterKeeper",
    [
        {"name": "operator", "type": "address"},
        {"name": "blsPublicKey", "type": "bytes"},
        {"name": "peerId", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "email", "type": "string"},
        {"name": "listenAddrs", "type": "string[]"},
    ],
)
"""`RegisterKeeper(address operator, bytes blsPublicKey, string peerId, string name, string email,
string[] listenAddrs, uint64 nonce, uint64 deadline)`, in the gateway domain (gateway.actions):
strings, not hashes, so that a wallet shows the operator what it signs."""

PlainText = Annotated[str, Meta(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]
Email = Annotated[str, Meta(max_length=254, pattern=r"^$|^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")]
ListenAddr = Annotated[str, Meta(max_length=256)]
Unsigned = Annotated[int, Meta(ge=0, le=MAX_NONCE)]  # signed as uint64; JSON Schema bounds int64


class KeeperFormRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """The body of POST /api/keepers/form: the operator's account, its BLS public key (48-byte
    compressed G1, as `triggerx-node keys show` prints it) with the proof of possession of its
    secret (96-byte compressed G2: the PoP-DST signature of the key, what registerOperator
    checks), the node's libp2p peer id (base58) and, optionally, how to reach its operator
    and its node; signed by the operator account (`RegisterKeeper`, gateway domain)."""

    operator: Annotated[str, Meta(pattern="^0x[0-9a-fA-F]{40}$", description="the operator's account")]
    bls_public_key: Annotated[str, Meta(pattern="^0x[0-9a-fA-F]{96}$")]
    proof_of_possession: Annotated[str, Meta(pattern="^0x[0-9a-fA-F]{192}$")]
    peer_id: Annotated[str, Meta(min_length=1, max_length=128, pattern="^[1-9A-HJ-NP-Za-km-z]+$")]
    name: PlainText = ""
    email: Email = ""
    listen_addrs: Annotated[list[ListenAddr], Meta(max_length=MAX_LISTEN_ADDRS)] = []
    nonce: Annotated[Unsigned, Meta(description="larger than any the operator used at this gateway")]
    deadline: Annotated[Unsigned, Meta(description="unix seconds, in the future, at most an hour away")]
    signature: Annotated[str, Meta(pattern="^0x[0-9a-fA-F]{130}$")]


class KeeperForm(msgspec.Struct, rename="camel", kw_only=True):
    """A stored form: what the operator sent, checked; the key and proof also in the
    EIP-2537 encoding registerOperator takes, the peer id as the registry stores it."""

    operator: str
    bls_public_key: bytes
    proof_of_possession: bytes
    registry_public_key: bytes
    registry_proof: bytes
    peer_id: str
    peer_id_bytes: bytes
    name: str
    email: str
    listen_addrs: list[str]
    nonce: int
    signature: bytes
    submitted_at: float
    status: FormStatus = "pending"
    decided_at: float | None = None
    note: str = ""


class FormRefusedError(Exception):
    """A form or a decision is refused: answered with `status`, naming `field`."""

    def __init__(self, status: int, problem: str, field: str | None = None, retry_after: int | None = None):
        super().__init__(problem)
        self.status, self.problem, self.field, self.retry_after = status, problem, field, retry_after


def keeper_form_message(form: KeeperFormRequest, domain: Domain) -> TypedMessage:
    """The `RegisterKeeper` message the operator signs for `form` in the gateway `domain`
    (gateway.actions.gateway_domain): every field of the form but the proof of possession
    (which proves itself) and the signature."""
    return TypedMessage(
        domain,
        REGISTER_KEEPER.name,
        REGISTER_KEEPER.fields,
        {
            "operator": to_checksum_address(form.operator),
            "blsPublicKey": bytes.fromhex(form.bls_public_key[2:]),
            "peerId": form.peer_id,
            "name": form.name,
            "email": form.email,
            "listenAddrs": form.listen_addrs,
            "nonce": form.nonce,
            "deadline": form.deadline,
        },
    )


class KeeperForms:
    """The forms, in the `keeper/form/` space of the gateway's store, one per operator.

    Args:
        store: the gateway's store.
        actions: checks the operator's signature and uses up its nonce (the gateway's one
            SignedActions: nonces count across every action signed in the gateway domain).
        max_pending: pending forms kept at most; a new operator's form beyond is a 503.
        checks_per_minute: proofs of possession checked per minute, for all callers (beyond:
            503).
        checks_per_client: of those, for one client (gateway.clients; beyond: 429).
        checks_per_operator: of those, for one operator account (beyond: 429).
    """

    def __init__(
        self,
        store: Store,
        actions: SignedActions,
        *,
        max_pending: int = MAX_PENDING,
        checks_per_minute: int = 30,
        checks_per_client: int = 3,
        checks_per_operator: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = Table(
            store,
            KeeperForm,
            KEEPERS.child("form"),
            key=lambda f: f.operator,
            indexes=[
                Index("status", lambda f: f.status),
                Index("key", lambda f: None if f.status == "rejected" else f.bls_public_key),
            ],
        )
        self.store, self.actions = store, actions
        self.max_pending, self.checks_per_minute, self.clock = max_pending, checks_per_minute, clock
        self.checks_per_client, self.checks_per_operator = checks_per_client, checks_per_operator
        # The store has one handle per process, so this count cannot drift from it.
        self.pending = sum(1 for status, _ in self.table.index_entries("status") if status == "pending")
        self._checker = trio.CapacityLimiter(1)
        # (trio time, client, operator) of each check in the last CHECK_WINDOW: at most
        # checks_per_minute, so each share is counted by a scan.
        self._checked: deque[tuple[float, str, str]] = deque()
        # Digests of (signature, proof) refused, with the signature's deadline (unix seconds):
        # at most checks_per_minute a minute, for an hour at most.
        self._refused: dict[bytes, int] = {}

    async def submit(self, request: KeeperFormRequest, client: str) -> KeeperForm:
        """Check and store `request`, sent by `client` (gateway.clients.client_of of the
        request's peer); FormRefusedError says what is wrong with it."""
        operator = _address(request.operator, "$.operator")
        peer_bytes = _peer_id(request.peer_id)
        for index, address in enumerate(request.listen_addrs):
            _check_listen_addr(address, request.peer_id, f"$.listenAddrs[{index}]")
        message = keeper_form_message(request, self.actions.domain)
        signature = bytes.fromhex(request.signature[2:])
        try:  # the deadline, the nonce, then the signature: the operator's
            verified = await self.actions.verify(message, signature, operator, self.clock())
        except ActionRefusedError as refused:
            raise FormRefusedError(refused.status, refused.reason, refused.field) from None
        public_key = bytes.fromhex(request.bls_public_key[2:])
        proof = bytes.fromhex(request.proof_of_possession[2:])
        registry_key, registry_proof = await trio.to_thread.run_sync(_points, public_key, proof)
        self._check_fits(operator, public_key)
        await self._check_possession(request, operator, client)
        form = KeeperForm(
            operator=operator,
            bls_public_key=public_key,
            proof_of_possession=proof,
            registry_public_key=registry_key,
            registry_proof=registry_proof,
            peer_id=request.peer_id,
            peer_id_bytes=peer_bytes,
            name=request.name,
            email=request.email,
            listen_addrs=request.listen_addrs,
            nonce=request.nonce,
            signature=signature,
            submitted_at=self.clock(),
        )
        self._check_fits(operator, public_key)  # again: other forms were written meanwhile
        self._put(form, verified)
        return form

    def page(self, status: FormStatus | None, *, limit: int, after: str | None) -> Page[KeeperForm]:
        """A page of the forms (those in `status`), by operator; ValueError for a foreign cursor."""
        if status is None:
            return self.table.scan(limit=limit, after=after)
        return self.table.by_index("status", status, limit=limit, after=after)

    def decide(self, operator: str, status: FormStatus, note: str) -> KeeperForm | None:
        """Mark `operator`'s form `status`, with the admin's `note`; None if it has none."""
        form = self.table.get(operator)
        if form is None:
            return None
        decided = msgspec.structs.replace(form, status=status, note=note, decided_at=self.clock())
        self._put(decided, None)
        return decided

    def _check_fits(self, operator: str, public_key: bytes) -> None:
        """Refuse a form that conflicts with a stored one, or one more than the cap."""
        stored = self.table.get(operator)
        if stored is not None and stored.status == "approved":
            raise FormRefusedError(409, f"{operator}'s form was approved already", "$.operator")
        holders = self.table.by_index("key", public_key, limit=2).items
        if any(holder.operator != operator for holder in holders):
            raise FormRefusedError(409, "another operator's form has this key", "$.blsPublicKey")
        if (stored is None or stored.status != "pending") and self.pending >= self.max_pending:
            raise FormRefusedError(503, f"{self.max_pending} forms wait for the admin already; try later")

    async def _check_possession(self, request: KeeperFormRequest, operator: str, client: str) -> None:
        """Check the proof of `operator`'s form, sent by `client`, (in a thread, one at a time)
        within the budgets, unless it was refused already with the same signature;
        FormRefusedError naming what is wrong."""
        public_key = bytes.fromhex(request.bls_public_key[2:])
        proof = bytes.fromhex(request.proof_of_possession[2:])
        refusal = hashlib.sha256(bytes.fromhex(request.signature[2:]) + proof).digest()
        if refusal in self._refused:
            raise FormRefusedError(400, f"{_NO_PROOF} (refused before)", "$.proofOfPossession")
        now = trio.current_time()
        while self._checked and self._checked[0][0] <= now - CHECK_WINDOW:
            self._checked.popleft()
        shares = (
            ([t for t, c, _ in self._checked if c == client], self.checks_per_client, "your address"),
            ([t for t, _, o in self._checked if o == operator], self.checks_per_operator, operator),
        )
        for times, share, whose in shares:
            if len(times) >= share:
                retry = math.ceil(times[0] + CHECK_WINDOW - now)
                problem = f"{share} forms a minute are checked for {whose}; retry in {retry} s"
                raise FormRefusedError(429, problem, retry_after=retry)
        if len(self._checked) >= self.checks_per_minute:
            retry = math.ceil(self._checked[0][0] + CHECK_WINDOW - now)
            raise FormRefusedError(
                503, f"too many forms to check this minute; retry in {retry} s", retry_after=retry
            )
        self._checked.append((now, client, operator))
        if not await trio.to_thread.run_sync(verify_possession, public_key, proof, limiter=self._checker):
            wall = self.clock()
            self._refused = {digest: until for digest, until in self._refused.items() if until >= wall}
            self._refused[refusal] = request.deadline
            raise FormRefusedError(400, _NO_PROOF, "$.proofOfPossession")

    def _put(self, form: KeeperForm, verified: VerifiedAction | None) -> None:
        """Write `form`, using up the nonce of the signature that asked for it, in one batch."""
        previous = self.table.get(form.operator)
        try:
            with self.store.batch() as batch:
                if verified is not None:
                    self.actions.consume(verified, batch)
                self.table.put(form, batch=batch)
        except ActionRefusedError as refused:  # another request used the nonce meanwhile
            raise FormRefusedError(refused.status, refused.reason, refused.field) from None
        self.pending += (form.status == "pending") - (previous is not None and previous.status == "pending")


_NO_PROOF = "does not prove possession of blsPublicKey's secret"


def _points(public_key: bytes, proof: bytes) -> tuple[bytes, bytes]:
    """The key and the proof in EIP-2537 encoding, once each is checked to be a point of its
    subgroup (the key not the point at infinity); FormRefusedError naming the one that is not."""
    try:
        registry_key = public_key_to_eip2537(public_key)
    except ValueError:
        raise FormRefusedError(400, "not a compressed BLS12-381 G1 point", "$.blsPublicKey") from None
    if registry_key == bytes(len(registry_key)):
        raise FormRefusedError(400, "the point at infinity is no public key", "$.blsPublicKey")
    if not g1_in_subgroup(registry_key):
        raise FormRefusedError(400, "not a point of the BLS12-381 G1 subgroup", "$.blsPublicKey")
    try:
        registry_proof = signature_to_eip2537(proof)
    except ValueError:
        raise FormRefusedError(400, "not a compressed BLS12-381 G2 point", "$.proofOfPossession") from None
    if registry_proof == bytes(len(registry_proof)):  # proves no key's possession
        raise FormRefusedError(400, "the point at infinity proves nothing", "$.proofOfPossession")
    if not g2_in_subgroup(registry_proof):
        raise FormRefusedError(400, "not a point of the BLS12-381 G2 subgroup", "$.proofOfPossession")
    return registry_key, registry_proof


def _address(given: str, field: str) -> str:
    if not is_address(given):
        raise FormRefusedError(400, f"{given!r} is not an address", field)
    if given[2:] not in (given[2:].lower(), given[2:].upper()) and given != to_checksum_address(given):
        raise FormRefusedError(400, f"{given} has a wrong EIP-55 checksum (a typo?)", field)
    return to_checksum_address(given)


def _peer_id(text: str) -> bytes:
    """The bytes of a base58 peer id (a multihash, as the registry stores it)."""
    try:
        peer = parse_peer_addr(f"/p2p/{text}").peer_id
    except ValueError:
        raise FormRefusedError(400, "not a libp2p peer id (base58)", "$.peerId") from None
    if peer.to_base58() != text:  # base58 has spellings that decode alike: keep the one canonical
        raise FormRefusedError(400, f"not a canonical peer id: {peer.to_base58()}?", "$.peerId")
    return peer.to_bytes()


def _check_listen_addr(address: str, peer_id: str, field: str) -> None:
    try:
        info = parse_peer_addr(address)
    except ValueError:
        raise FormRefusedError(400, "not a multiaddr ending in /p2p/<peer id>", field) from None
    if info.peer_id.to_base58() != peer_id:
        raise FormRefusedError(400, f"ends in /p2p/{info.peer_id.to_base58()}, not the form's peerId", field)
