"""python-etcd3's ``Member``: one member of the cluster, with ``remove()`` and ``update()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from .client import MultiEndpointEtcd3Client

__all__ = ["Member"]


class Member:
    """A member of the etcd cluster: ``id``, ``name``, ``peer_urls``, ``client_urls``."""

    def __init__(
        self,
        id: int,
        name: str,
        peer_urls: Iterable[str],
        client_urls: Iterable[str],
        etcd_client: MultiEndpointEtcd3Client | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.peer_urls = list(peer_urls)
        self.client_urls = list(client_urls)
        self._etcd_client = etcd_client

    def __str__(self) -> str:
        return f"Member {self.id}: peer urls: {self.peer_urls}, client urls: {self.client_urls}"

    def _client(self) -> MultiEndpointEtcd3Client:
        if self._etcd_client is None:
            raise ValueError("this Member has no client")
        return self._etcd_client

    def remove(self) -> None:
        """Remove this member from the cluster."""
        self._client().remove_member(self.id)

    def update(self, peer_urls: Iterable[str]) -> None:
        """Give this member new peer URLs."""
        self._client().update_member(self.id, peer_urls)

    @property
    def active_alarms(self) -> Any:
        """The alarms raised on this member (an iterator of ``Alarm``)."""
        return self._client().list_alarms(member_id=self.id)
