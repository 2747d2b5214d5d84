"""The faces stay in step with the trio client: every public method and property of each trio
class is on its face, forwarding to the trio method of that name (so the arguments are the
same), and the few written out by hand take the same parameters. Sans-IO."""

from __future__ import annotations

import inspect
import sys
import typing
from types import ModuleType
from typing import Any

import pytest

import puregrpc_etcd as etcd
from puregrpc_etcd import _face, aio, sync
from puregrpc_etcd import watch as trio_watch

#: Trio names that have no face, each with its reason.
LEFT_OUT = {
    # It takes a trio nursery; face users iterate a watch in a thread or task instead.
    ("Client", "watch_callback"),
    # Meant for trio's ``nursery.start``, as the implementation of ``watch_callback``.
    ("WatchContext", "run"),
}

#: The trio classes and the faces' names for them.
CLASSES = {
    "Client": etcd.Client,
    "Cluster": etcd.Cluster,
    "Maintenance": etcd.Maintenance,
    "Auth": etcd.Auth,
    "Lock": etcd.Lock,
    "TryLock": etcd.TryLock,
    "Election": etcd.Election,
    "LeaderObserver": etcd.LeaderObserver,
    "Mirror": etcd.Mirror,
    "Watcher": etcd.Watcher,
    "WatchContext": trio_watch.WatchContext,
}

#: The protocols of the trio classes and what stands for them on each face.
PROTOCOLS = {
    "sync": {
        "__aenter__": "__enter__",
        "__aexit__": "__exit__",
        "__aiter__": "__iter__",
        "__anext__": "__iter__",
        "__await__": "acquire",
        "aclose": "close",
    },
    "aio": {
        "__aenter__": "__aenter__",
        "__aexit__": "__aexit__",
        "__aiter__": "__aiter__",
        "__anext__": "__anext__",
        "__await__": "__await__",
    },
}
FACES: dict[str, ModuleType] = {"sync": sync, "aio": aio}


def public_names(cls: type) -> set[str]:
    names = {name for name in dir(cls) if not name.startswith("_")}
    dunders = {name for name in PROTOCOLS["sync"] if name.startswith("__")}
    return names | {name for name in dunders if hasattr(cls, name)}


def parameters(fn: Any) -> list[tuple[str, Any, Any]]:
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(fn).parameters.values()
        if p.name != "self"
    ]


@pytest.mark.parametrize("face_name", sorted(FACES))
@pytest.mark.parametrize("class_name", sorted(CLASSES))
def test_every_public_name_is_on_the_face(face_name: str, class_name: str) -> None:
    trio_cls = CLASSES[class_name]
    face_cls = getattr(FACES[face_name], class_name)
    protocols = PROTOCOLS[face_name]
    for name in sorted(public_names(trio_cls)):
        if (class_name, name) in LEFT_OUT:
            assert not hasattr(face_cls, name)
            continue
        face_name_of = protocols.get(name, name)
        assert hasattr(face_cls, face_name_of), f"{face_name}.{class_name} lacks {face_name_of}"
        if name != face_name_of or name.startswith("__"):
            continue
        trio_attr = inspect.getattr_static(trio_cls, name)
        face_attr = inspect.getattr_static(face_cls, name)
        forwarded = getattr(face_attr, "_method", None)
        if forwarded is not None:
            # A forwarding descriptor: the trio method of the same name, by construction.
            assert forwarded is getattr(trio_cls, name)
            assert forwarded.__name__ == name
        elif isinstance(trio_attr, classmethod) or (
            callable(trio_attr) and not isinstance(trio_attr, property)
        ):
            assert parameters(getattr(face_cls, name)) == parameters(getattr(trio_cls, name)), (
                f"{face_name}.{class_name}.{name}"
            )
        else:  # a property, a slot or a dataclass field: a property on the face
            assert isinstance(face_attr, property), f"{face_name}.{class_name}.{name}"


def kind_of(method: Any) -> type:
    """The descriptor kind a trio method needs on a face."""
    if inspect.iscoroutinefunction(method):
        return _face.Awaited
    if inspect.isasyncgenfunction(method):
        return _face.Iterated
    if inspect.isasyncgenfunction(getattr(method, "__wrapped__", None)):
        return _face.Entered  # an @asynccontextmanager
    return _face.Made


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_each_forwarded_method_is_forwarded_as_its_kind(face_name: str) -> None:
    """An awaited call for a coroutine, a held block for an async context manager, iteration
    for an async generator, one hop for a plain method: a descriptor of the wrong kind would
    still have the right name and parameters."""
    checked = 0
    for class_name in CLASSES:
        face_cls = getattr(FACES[face_name], class_name)
        for name in dir(face_cls):
            descriptor = inspect.getattr_static(face_cls, name, None)
            if isinstance(descriptor, _face.Forward):
                assert type(descriptor) is kind_of(descriptor._method), f"{class_name}.{name}"
                checked += 1
    assert checked > 60


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_connect_takes_the_arguments_of_connect(face_name: str) -> None:
    face_connect = FACES[face_name].connect
    assert parameters(face_connect) == parameters(etcd.connect)


def test_aio_methods_are_coroutine_functions() -> None:
    # A sans-IO look at what the descriptors make: no portal is needed to build the callables.
    face = aio.Client.__new__(aio.Client)
    face._portal = None  # type: ignore[assignment]
    face._target = etcd.Client.__new__(etcd.Client)
    face._bound = {}
    for name in ("get", "put", "txn", "acquire_lock", "grant"):
        assert inspect.iscoroutinefunction(getattr(face, name)), name
    assert inspect.signature(face.get) == inspect.signature(face._target.get)


def test_forwarding_methods_are_made_once_per_face() -> None:
    # Made at the first access and kept: a call through a face does not build a closure.
    face = aio.Client.__new__(aio.Client)
    face._portal = None  # type: ignore[assignment]
    face._target = etcd.Client.__new__(etcd.Client)
    face._bound = {}
    assert face.get is face.get
    other = aio.Client.__new__(aio.Client)
    other._portal = None  # type: ignore[assignment]
    other._target = etcd.Client.__new__(etcd.Client)
    other._bound = {}
    assert other.get is not face.get  # each face forwards to its own trio client


@pytest.mark.skipif(
    sys.version_info < (3, 10), reason="annotations use X | Y, evaluable from Python 3.10"
)
@pytest.mark.parametrize("face", [sync, aio], ids=["sync", "aio"])
def test_type_hints_resolve_at_run_time(face: ModuleType) -> None:
    """Tools that read class annotations at run time (typeguard, beartype, dataclass-like
    introspection) can: ``typing.get_type_hints`` works on every class of each face (the
    names methods' annotations import only for type checkers are another matter)."""
    classes = [getattr(face, name) for name in face.__all__]
    classes = [value for value in classes if isinstance(value, type)]
    assert len(classes) > 10
    for cls in classes:
        typing.get_type_hints(cls)  # the class and its bases (Face, the forwarding tables)
