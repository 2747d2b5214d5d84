"""The package's version, spelled here only: ``pyproject.toml`` reads it (setuptools' dynamic
``version``), ``puregrpc_etcd.__version__`` and ``puregrpc-etcd version`` import it."""

__version__ = "0.1.0"
