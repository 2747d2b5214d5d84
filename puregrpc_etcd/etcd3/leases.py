"""python-etcd3's ``Lease``: a granted lease, with ``revoke()``, ``refresh()`` and its TTLs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import MultiEndpointEtcd3Client

__all__ = ["Lease"]


class Lease:
    """A lease: ``id`` and the ``ttl`` the server granted.

    As in python-etcd3 nothing keeps it alive by itself: call ``refresh()`` (or use the native
    client's ``lease()``, which does).
    """

    def __init__(
        self, lease_id: int, ttl: int, etcd_client: MultiEndpointEtcd3Client | None = None
    ) -> None:
        self.id = lease_id
        self.ttl = ttl
        self.etcd_client = etcd_client

    def _client(self) -> MultiEndpointEtcd3Client:
        if self.etcd_client is None:
            raise ValueError("this Lease has no client")
        return self.etcd_client

    def _get_lease_info(self) -> Any:
        return self._client().get_lease_info(self.id)

    def revoke(self) -> None:
        """Revoke this lease (its keys are deleted)."""
        self._client().revoke_lease(self.id)

    def refresh(self) -> list[Any]:
        """Renew the lease once; a list of ``LeaseKeepAliveResponse`` messages."""
        return list(self._client().refresh_lease(self.id))

    @property
    def remaining_ttl(self) -> int:
        return int(self._get_lease_info().TTL)

    @property
    def granted_ttl(self) -> int:
        return int(self._get_lease_info().grantedTTL)

    @property
    def keys(self) -> list[bytes]:
        return list(self._get_lease_info().keys)
