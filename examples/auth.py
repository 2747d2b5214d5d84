"""Authentication: a root user, a read-only role on a prefix, and a client that logs in.

This turns authentication on and off again on the server it is given: point it at a
throwaway server (`puregrpc-etcd dev-server`), not at a cluster others use.

Run: python examples/auth.py [ENDPOINT]   (default: $ETCDCTL_ENDPOINTS, else 127.0.0.1:2379)
"""

from __future__ import annotations

import os
import sys

import trio

import puregrpc_etcd as etcd

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ETCDCTL_ENDPOINTS")


async def main() -> None:
    async with etcd.connect(ENDPOINT) as admin:
        auth = admin.auth
        await auth.user_add("root", "root-password")
        await auth.user_grant_role("root", "root")
        await auth.role_add("config-reader")
        await auth.role_grant_permission("config-reader", "read", "examples/auth/", prefix=True)
        await auth.user_add("reader", "reader-password")
        await auth.user_grant_role("reader", "config-reader")
        await admin.put("examples/auth/greeting", "hello")
        await auth.enable()
    try:
        async with etcd.connect(ENDPOINT, username="reader", password="reader-password") as user:
            print("reader reads:", await user.get_value("examples/auth/greeting"))
            try:
                await user.put("examples/auth/greeting", "changed")
            except etcd.PermissionDeniedError as exc:
                print("reader may not write:", exc.details)
        try:
            async with etcd.connect(ENDPOINT, username="reader", password="wrong") as bad:
                await bad.get("examples/auth/greeting")
        except etcd.AuthFailedError as exc:
            print("wrong password:", exc.details)
    finally:
        async with etcd.connect(ENDPOINT, username="root", password="root-password") as root:
            await root.auth.disable()
            await root.delete("examples/auth/", prefix=True)
            for user_name in ("reader", "root"):
                await root.auth.user_delete(user_name)
            await root.auth.role_delete("config-reader")
    print("authentication is off again")


if __name__ == "__main__":
    trio.run(main)
