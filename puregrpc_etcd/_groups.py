"""Exception groups at the public API: trio nurseries wrap errors in groups, callers want the
one error that happened. Works with the builtin groups (3.11+) and the ``exceptiongroup``
backport that trio uses on 3.9 and 3.10.
"""

from __future__ import annotations

import builtins
import importlib

import trio

__all__ = ["unwrap_group"]


def _group_types() -> tuple[type[BaseException], ...]:
    group = getattr(builtins, "BaseExceptionGroup", None)
    if group is None:
        try:
            group = importlib.import_module("exceptiongroup").BaseExceptionGroup
        except ImportError:
            return ()
    return (group,)


_GROUP_TYPES = _group_types()


def unwrap_group(exc: BaseException) -> BaseException:
    """The one real exception inside nested exception groups (cancellations left out)."""
    while isinstance(exc, _GROUP_TYPES):
        inner = [e for e in exc.exceptions if not isinstance(e, trio.Cancelled)]  # type: ignore[attr-defined]
        if len(inner) != 1:
            if not inner and exc.exceptions:  # type: ignore[attr-defined]
                return exc.exceptions[0]  # type: ignore[attr-defined,no-any-return]
            return exc
        exc = inner[0]
    return exc
