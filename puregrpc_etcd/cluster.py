"""Cluster membership (``client.cluster``): list, add, remove, update and promote members.

Also ``auto_sync``, the background task behind ``connect(auto_sync_interval=...)`` that keeps the
channel's endpoint list in step with the members' client URLs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence, Union

import trio

from puregrpc_etcd import _rpcs as rpcs
from puregrpc_etcd._credentials import warn_if_exposed
from puregrpc_etcd._endpoints import normalize_endpoint
from puregrpc_etcd._proto import rpc_pb2
from puregrpc_etcd.errors import EtcdError
from puregrpc_etcd.types import ResponseHeader, response_header

if TYPE_CHECKING:
    from puregrpc_etcd._base import ClientBase

__all__ = [
    "Cluster",
    "Member",
    "MemberAddResponse",
    "auto_sync",
    "serving_endpoints",
    "sync_endpoints",
]

logger = logging.getLogger(__name__)

PeerURLs = Union[str, Sequence[str]]


@dataclass(frozen=True)
class Member:
    """One cluster member as MemberList reports it.

    A member that was added but has not started yet has an empty ``name`` and no
    ``client_urls``; ``is_learner`` members replicate the log but neither vote nor serve
    linearizable requests until promoted.
    """

    __slots__ = ("client_urls", "id", "is_learner", "name", "peer_urls")
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def started(self) -> bool:
        """True once the member has joined and published its name and client URLs."""
        return bool(self.name)


@dataclass(frozen=True)
class MemberAddResponse:
    """A MemberAdd reply: the new ``member`` and every ``members`` of the cluster after it.

    Starting the new member needs the whole list (etcd's ``--initial-cluster``).
    """

    __slots__ = ("header", "member", "members")
    header: ResponseHeader
    member: Member
    members: list[Member]


def _member(pb: rpc_pb2.Member) -> Member:
    return Member(
        id=pb.ID,
        name=pb.name,
        peer_urls=tuple(pb.peerURLs),
        client_urls=tuple(pb.clientURLs),
        is_learner=pb.isLearner,
    )


def _members(pbs: Iterable[rpc_pb2.Member]) -> list[Member]:
    return [_member(pb) for pb in pbs]


def _peer_urls(peer_urls: PeerURLs) -> list[str]:
    urls = [peer_urls] if isinstance(peer_urls, str) else list(peer_urls)
    for url in urls:
        if not isinstance(url, str):
            raise TypeError(f"peer URLs must be str, not {type(url).__name__}")
        if not url.strip():
            raise ValueError("a peer URL must not be empty")
    if not urls:
        raise ValueError("give at least one peer URL")
    return urls


def _member_id(member_id: object) -> int:
    # bool is an int subclass; True as a member id is a bug at the call site.
    if not isinstance(member_id, int) or isinstance(member_id, bool):
        raise TypeError(f"a member id must be an int, not {type(member_id).__name__}")
    if not 0 < member_id < 1 << 64:
        raise ValueError(f"invalid member id: {member_id}")
    return member_id


class Cluster:
    """The Cluster service of one client: ``client.cluster``."""

    __slots__ = ("_client",)

    def __init__(self, client: ClientBase) -> None:
        self._client = client

    async def members(
        self, *, linearizable: bool = False, timeout: float | None = None
    ) -> list[Member]:
        """Every member of the cluster, learners and not-yet-started members included.

        ``linearizable`` asks the member to confirm with the leader first (etcd 3.5.13+; older
        servers ignore it and answer from their local view).
        """
        reply = await self._client._unary(
            rpcs.MEMBER_LIST, rpc_pb2.MemberListRequest(linearizable=linearizable), timeout=timeout
        )
        return _members(reply.members)

    async def add_member(
        self, peer_urls: PeerURLs, *, learner: bool = False, timeout: float | None = None
    ) -> MemberAddResponse:
        """Add a member that will listen on ``peer_urls``; start it afterwards with
        ``--initial-cluster-state existing``. A ``learner`` must be promoted to vote."""
        request = rpc_pb2.MemberAddRequest(peerURLs=_peer_urls(peer_urls), isLearner=learner)
        reply = await self._client._unary(rpcs.MEMBER_ADD, request, timeout=timeout)
        return MemberAddResponse(
            header=response_header(reply.header),
            member=_member(reply.member),
            members=_members(reply.members),
        )

    async def remove_member(self, id: int, *, timeout: float | None = None) -> list[Member]:
        """Remove the member ``id``; returns the members left."""
        reply = await self._client._unary(
            rpcs.MEMBER_REMOVE, rpc_pb2.MemberRemoveRequest(ID=_member_id(id)), timeout=timeout
        )
        return _members(reply.members)

    async def update_member(
        self,
        id: int,
        peer_urls: PeerURLs,
        *,
        allow_learner: bool = False,
        timeout: float | None = None,
    ) -> list[Member]:
        """Change the peer URLs of member ``id``; returns the members after the change.

        Refuses a learner unless ``allow_learner``: etcd servers before the fix of
        etcd-io/etcd#21694 (3.5.1 among them) then list the learner as a voting member while
        raft still treats it as a learner, so it can never be promoted. Remove it and add it
        again with the new URLs instead.
        """
        request = rpc_pb2.MemberUpdateRequest(ID=_member_id(id), peerURLs=_peer_urls(peer_urls))
        if not allow_learner:
            for member in await self.members(timeout=timeout):
                if member.id == id and member.is_learner:
                    raise EtcdError(
                        f"member {id:x} is a learner; updating its peer URLs makes many etcd "
                        "versions forget that (etcd-io/etcd#21694): remove it and add it again, "
                        "or pass allow_learner=True"
                    )
        reply = await self._client._unary(rpcs.MEMBER_UPDATE, request, timeout=timeout)
        return _members(reply.members)

    async def promote_member(self, id: int, *, timeout: float | None = None) -> list[Member]:
        """Make the learner ``id`` a voting member; returns the members after the change.

        The server refuses (``FAILED_PRECONDITION``, "can only promote a learner member which is
        in sync with leader") until the learner has caught up with the leader's log.
        """
        reply = await self._client._unary(
            rpcs.MEMBER_PROMOTE, rpc_pb2.MemberPromoteRequest(ID=_member_id(id)), timeout=timeout
        )
        return _members(reply.members)


def serving_endpoints(members: Iterable[Member], *, tls: bool | None = None) -> list[str]:
    """The client endpoints worth connecting to: those of started, voting members.

    ``tls`` keeps only the ``https://`` (True) or ``http://`` (False) URLs: a client never moves
    from TLS to plaintext (or to a TLS it has no settings for) because a member also listens so.
    """
    scheme = {None: "", True: "https://", False: "http://"}[tls]
    endpoints: list[str] = []
    for member in members:
        if not member.started or member.is_learner:
            continue
        for url in member.client_urls:
            try:
                endpoint = normalize_endpoint(url)
            except ValueError:
                # A member may also listen on a unix socket; this client cannot use it.
                continue
            if endpoint.startswith(scheme) and endpoint not in endpoints:
                endpoints.append(endpoint)
    return endpoints


async def auto_sync(
    client: ClientBase,
    interval: float,
    *,
    timeout: float = 5.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Every ``interval`` seconds, replace the channel's endpoints with the cluster's.

    Runs until cancelled; start it with ``await nursery.start(auto_sync, client, interval)``
    so that a bad interval fails there. A failed refresh is logged and tried again next period:
    the old list still works, and the channel fails over on its own. Only member URLs of the
    client's own scheme are taken (``https://`` for a TLS client, ``http://`` otherwise).
    """
    if not interval > 0:
        raise ValueError("auto_sync_interval must be a positive number of seconds")
    task_status.started()
    while True:
        await trio.sleep(interval)
        await sync_endpoints(client, timeout=timeout)


async def sync_endpoints(client: ClientBase, *, timeout: float = 5.0) -> None:
    """One round of ``auto_sync``: the channel's endpoints replaced with the members' URLs of
    the client's scheme (kept as they are when MemberList fails or lists none)."""
    try:
        members = await Cluster(client).members(timeout=timeout)
    except EtcdError as exc:
        logger.debug("auto sync: MemberList failed, keeping the endpoints: %s", exc)
        return
    endpoints = serving_endpoints(members, tls=client._tls)
    if endpoints:
        warn_if_exposed(client, endpoints, stacklevel=1)
        client._channel.set_endpoints(endpoints)
