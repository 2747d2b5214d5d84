"""The pieces of the ``puregrpc-etcd`` command; ``puregrpc_etcd.cli.run`` is its entry point.

Parsing, output formats, the txn reader and the subcommands each live in their own module.
"""

from __future__ import annotations

import importlib
from typing import Any


class OnFirstUse:
    """A module, or one of its attributes, imported when first used: ``--help`` and ``version``
    build the whole command tree, and need neither an event loop nor protobuf for that. The
    modules that use one import the real name under ``TYPE_CHECKING`` for type checkers."""

    def __init__(self, module: str, attribute: str | None = None) -> None:
        self._module = module
        self._attribute = attribute

    def _target(self) -> Any:
        module = importlib.import_module(self._module)
        return module if self._attribute is None else getattr(module, self._attribute)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)


trio = OnFirstUse("trio")
