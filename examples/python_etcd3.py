"""A python-etcd3 program, unchanged but for its import line: configuration, a transaction,
service registration on a lease, a watch callback and workers taking python-etcd3's lock.

Run: python examples/python_etcd3.py [HOST:PORT]   (default: $ETCDCTL_ENDPOINTS)
"""

from __future__ import annotations

import os
import queue
import sys
import threading

from puregrpc_etcd import etcd3  # was: import etcd3

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS", "")
HOST, _, PORT = ENDPOINT.rpartition("/")[2].rpartition(":")
PREFIX = "/examples/python_etcd3/"


def main() -> None:
    etcd = etcd3.client(host=HOST or "localhost", port=int(PORT or 2379), timeout=10)

    # Configuration.
    etcd.put(PREFIX + "config/name", "MyApp")
    value, meta = etcd.get(PREFIX + "config/name")
    print("config/name:", value, "at revision", meta.mod_revision)

    # A transaction: set the version only if nobody has yet.
    created = etcd.transaction(
        compare=[etcd.transactions.version(PREFIX + "config/version") == 0],
        success=[etcd.transactions.put(PREFIX + "config/version", "1")],
        failure=[etcd.transactions.get(PREFIX + "config/version")],
    )[0]
    print("version created:", created)

    # Watch the services prefix through a callback (python-etcd3 calls it from a thread).
    seen: queue.Queue[object] = queue.Queue()
    watch_id = etcd.add_watch_prefix_callback(PREFIX + "services/", seen.put)

    # Register a service on a lease: the key goes when the lease does.
    lease = etcd.lease(10)
    etcd.put(PREFIX + "services/api", "10.0.0.1:8080", lease=lease)
    response = seen.get(timeout=10)
    print("watch saw:", [(e.key, e.value) for e in response.events])
    lease.revoke()
    print("after revoke:", etcd.get(PREFIX + "services/api")[0])
    etcd.cancel_watch(watch_id)

    # Workers taking python-etcd3's lock (/locks/<name>) in turn.
    order = []

    def worker(number: int) -> None:
        with etcd.lock("examples-python-etcd3", ttl=10):
            order.append(number)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"{len(order)} workers took the lock in turn")

    etcd.delete_prefix(PREFIX)
    etcd.close()


if __name__ == "__main__":
    main()
