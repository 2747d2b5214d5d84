"""python-etcd3's watch events: ``PutEvent`` and ``DeleteEvent`` over a protobuf ``Event``.

Attributes come from the event's key-value (``key``, ``value``, ``mod_revision``, ...) and,
with a ``prev_`` prefix, from its previous key-value (``prev_value``; watches with
``prev_kv=True``).
"""

from __future__ import annotations

from typing import Any

from puregrpc_etcd._proto import kv_pb2

__all__ = ["DeleteEvent", "Event", "PutEvent", "new_event"]


class Event:
    def __init__(self, event: kv_pb2.Event) -> None:
        self.key = event.kv.key
        self._event = event

    def __getattr__(self, name: str) -> Any:
        if name.startswith("prev_"):
            return getattr(self._event.prev_kv, name[5:])
        return getattr(self._event.kv, name)

    def __str__(self) -> str:
        return f"{self.__class__} key={self.key!r} value={self.value!r}"


class PutEvent(Event):
    pass


class DeleteEvent(Event):
    pass


def new_event(event: kv_pb2.Event) -> Event:
    """Wrap a protobuf ``mvccpb.Event`` in ``PutEvent`` or ``DeleteEvent``."""
    if event.type == kv_pb2.Event.PUT:
        return PutEvent(event)
    if event.type == kv_pb2.Event.DELETE:
        return DeleteEvent(event)
    raise ValueError(f"invalid event type {event.type}")
