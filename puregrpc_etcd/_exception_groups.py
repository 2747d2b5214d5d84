"""Exception groups at the public API: trio nurseries wrap errors in groups, callers want the
one error that happened. Works with the builtin groups (3.11+) and the ``exceptiongroup``
backport that trio uses on 3.9 and 3.10.
"""

from __future__ import annotations

import builtins
import importlib

__all__ = ["strip_own_group", "unwrap_group"]


def _group_types() -> tuple[type[BaseException], ...]:
    group = getattr(builtins, "BaseExceptionGroup", None)
    if group is None:
        try:
            group = importlib.import_module("exceptiongroup").BaseExceptionGroup
        except ImportError:
            return ()
    return (group,)


_GROUP_TYPES = _group_types()


def strip_own_group(exc: BaseException) -> BaseException:
    """The error inside the one group that a nursery of ours wrapped around it.

    Only that level comes off, and only when it holds a single error besides cancellations:
    whatever the code inside the nursery raised, a group of its own included, comes out as it
    was raised. ``exc`` itself when it is not such a group.
    """
    if not isinstance(exc, _GROUP_TYPES):
        return exc
    import trio  # not at the top: the command's --help imports this module, and no event loop

    inner = exc.exceptions  # type: ignore[attr-defined]
    real = [e for e in inner if not isinstance(e, trio.Cancelled)]
    if len(real) == 1:
        return real[0]  # type: ignore[no-any-return]
    if not real and inner:
        return inner[0]  # type: ignore[no-any-return]
    return exc


def unwrap_group(exc: BaseException) -> BaseException:
    """The one real exception inside nested exception groups (cancellations left out).

    For reporting only (the CLI's one-line errors): it also opens groups that user code made.
    """
    while True:
        inner = strip_own_group(exc)
        if inner is exc:
            return exc
        exc = inner
