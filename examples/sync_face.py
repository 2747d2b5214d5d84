"""The blocking face: configuration, a worker pool sharing one client, a lock and a watch,
with no async code at all (``puregrpc_etcd.sync``; the trio client runs in a thread it owns).

Run: python examples/sync_face.py [ENDPOINT]   (default: $ETCDCTL_ENDPOINTS)
"""

from __future__ import annotations

import os
import sys
import threading

from puregrpc_etcd import sync

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS")
PREFIX = "examples/sync_face/"


def main() -> None:
    with sync.connect(ENDPOINT) as client:
        client.put(PREFIX + "config/workers", "4")
        workers = int(client.get_value(PREFIX + "config/workers") or b"1")
        start = client.get(PREFIX + "jobs/", prefix=True).header.revision + 1

        def worker(number: int) -> None:  # threads share the one client
            with client.lock(PREFIX + "lock", ttl=10):  # one at a time
                done = client.get(PREFIX + "jobs/", prefix=True, count_only=True).count
                client.put(f"{PREFIX}jobs/{number}", f"done as #{done + 1}")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        events = client.watch(PREFIX + "jobs/", prefix=True, start_revision=start)
        for seen, event in enumerate(events, 1):
            print(event.type, event.kv.key.decode(), event.kv.value.decode())
            if seen == workers:
                break  # leaving the loop closes the watcher
        client.delete(PREFIX, prefix=True)
        print(f"{workers} workers took the lock in turn")


if __name__ == "__main__":
    main()
