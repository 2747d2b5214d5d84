"""Namespaced views of a client, as Go's ``client/v3/namespace``: ``client.namespace("app/")``.

A view shares everything with its client (connection, nursery, watch stream, lease keeper, auth
token) except the key prefix that ``ClientBase`` adds to every key going out and removes coming in.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from puregrpc_etcd._base import ClientBase
from puregrpc_etcd._keys import KeySpace

__all__ = ["NamespaceMixin"]

C = TypeVar("C", bound=ClientBase)

# Attributes a view keeps for itself; every other one is read from and written to the root
# client, so that state made lazily through a view (the watch hub, the lease keeper, a fresh
# auth token) is the client's, shared with every view and never a diverging copy.
_OWN = frozenset({"_keyspace", "_view_root", "__class__", "__dict__"})


class _View:
    """Put in front of a client's class by ``_view_class``: the view's attributes are its root's."""

    _view_root: ClientBase
    _keyspace: KeySpace

    def __getattribute__(self, name: str) -> Any:
        if name not in _OWN:
            root_dict = object.__getattribute__(self, "_view_root").__dict__
            if name in root_dict:
                return root_dict[name]
        # Methods and properties come from the class and bind to the view, so its keys are its own.
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: object) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._view_root, name, value)

    def __delattr__(self, name: str) -> None:
        if name in _OWN:
            object.__delattr__(self, name)
        else:
            delattr(self._view_root, name)

    def __repr__(self) -> str:
        return f"<namespace {self._keyspace.prefix!r} of {self._view_root!r}>"


_view_classes: dict[type[ClientBase], type[ClientBase]] = {}


def _view_class(client_class: type[ClientBase]) -> type[ClientBase]:
    view_class = _view_classes.get(client_class)
    if view_class is None:
        # A subclass of the client's own class: isinstance() and every method work on a view.
        name = f"Namespaced{client_class.__name__}"
        view_class = _view_classes[client_class] = type(name, (_View, client_class), {})
    return view_class


class NamespaceMixin(ClientBase):
    """``namespace()``: views of the client under a key prefix."""

    def namespace(self: C, prefix: object) -> C:
        """A view of this client in which every key lives under ``prefix``.

        Keys going out (KV, txn compares and nested ops, watches, locks, elections, lease
        attachments) get ``prefix`` in front, and keys coming back lose it; a range that runs to
        the end of the keyspace (``prefix=True`` on an empty key, ``from_key=True``,
        ``range_end=b"\\0"``) ends at the end of the namespace instead. The view shares the
        client's connection, nursery, watch stream and leases, and lives as long as the client.
        Views nest: ``client.namespace("a/").namespace("b/")`` is ``client.namespace("a/b/")``.
        Cluster, maintenance and auth calls are not namespaced (as in Go).
        """
        keyspace = self._keyspace.under(prefix)
        root = self.__dict__.get("_view_root", self)
        view = object.__new__(_view_class(type(root)))
        object.__setattr__(view, "_view_root", root)
        object.__setattr__(view, "_keyspace", keyspace)
        return cast("C", view)
