"""The one conftest of the tests. The fixtures and hooks of every directory live in named modules
of ``tests/support`` (on pytest's ``pythonpath``), loaded here:

- ``trio_time_bound``: a hang in a trio test fails that test alone and shows where its tasks wait.
- ``etcd_fixtures``: ``server`` (one real etcd per test module), ``client``, and the command's
  ``cli`` and ``prefix``.
- ``interop_fixtures``: the grpcio servers of the transport's interop tests and a ``channel``.
- ``etcd3_suite_shim``: what runs python-etcd3's vendored test suite against our drop-in.
- ``child_signals``: the processes the tests start get Ctrl-C, even when pytest runs in a
  background job (which starts with SIGINT ignored).

Tests of time logic run on trio's virtual clock: pytest-trio's ``autojump_clock`` fixture.
"""

pytest_plugins = [
    "trio_time_bound",
    "etcd_fixtures",
    "interop_fixtures",
    "etcd3_suite_shim",
    "child_signals",
]
