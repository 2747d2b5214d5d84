"""Watch against etcd servers started with particular flags: auth with short-lived tokens,
periodic progress notifications, and a small message limit that makes etcd fragment replies."""

from __future__ import annotations

import subprocess

import pytest
import trio

import puregrpc_etcd as etcd
from puregrpc_etcd.errors import PermissionDeniedError, RpcError
from puregrpc_etcd.grpc import StatusCode
from puregrpc_etcd.testing import EtcdServer, find_etcd_tool
from puregrpc_etcd.watch import Event, Watcher


async def take(watcher: Watcher, count: int, seconds: float = 10.0) -> list[Event]:
    events = []
    with trio.fail_after(seconds):
        async for event in watcher:
            events.append(event)
            if len(events) == count:
                break
    return events


def etcdctl(server: EtcdServer, *args: str) -> None:
    command = [find_etcd_tool("etcdctl"), "--endpoints", server.endpoint, *args]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


async def test_new_watch_after_token_expiry_and_missing_permission() -> None:
    # Simple tokens expire about ttl + 1 s after last use; a stream keeps the token it was
    # opened with, so etcd refuses new watches on it until the stream is reopened.
    with EtcdServer(args=["--auth-token-ttl", "1"]) as server:
        etcdctl(server, "user", "add", "root:rootpw")
        etcdctl(server, "user", "add", "reader:readerpw")
        etcdctl(server, "role", "add", "reads-a")
        etcdctl(server, "role", "grant-permission", "reads-a", "read", "a/", "--prefix=true")
        etcdctl(server, "user", "grant-role", "reader", "reads-a")
        etcdctl(server, "auth", "enable")
        async with (
            etcd.connect(server.endpoints, username="root", password="rootpw") as root,
            root.watch("a/first") as first,
        ):
            await trio.sleep(3.5)  # the stream's token has expired by now
            async with root.watch("a/second") as second:
                await root.put("a/first", "1")
                await root.put("a/second", "2")
                assert [e.kv.value for e in await take(second, 1)] == [b"2"]
            assert [e.kv.value for e in await take(first, 1)] == [b"1"]
        async with etcd.connect(server.endpoints, username="reader", password="readerpw") as c:
            with pytest.raises(PermissionDeniedError):
                async with c.watch("b/forbidden"):
                    raise AssertionError("a watch without read permission was created")
            async with (
                etcd.connect(server.endpoints, username="root", password="rootpw") as root,
                c.watch("a/", prefix=True) as allowed,
            ):
                await root.put("a/x", "x")
                assert [e.kv.key for e in await take(allowed, 1)] == [b"a/x"]


async def test_progress_notify_advances_a_quiet_watcher() -> None:
    interval = ["--experimental-watch-progress-notify-interval", "200ms"]
    with EtcdServer(args=interval) as server:
        async with (
            etcd.connect(server.endpoints) as client,
            client.watch("quiet", progress_notify=True) as notified,
            client.watch("quiet") as plain,
        ):
            start = notified.revision
            elsewhere = await client.put("elsewhere", "v")
            for _ in range(500):
                if notified.revision >= elsewhere.header.revision:
                    break
                await trio.sleep(0.02)
            assert notified.revision >= elsewhere.header.revision > start
            assert plain.revision == start  # nobody told this one
            assert notified.pending == 0


async def test_fragmented_replies_are_reassembled() -> None:
    # etcd splits a reply larger than --max-request-bytes + 512 KiB into fragments when the
    # watch asks for it; a catch-up batch of 200 values of 3 KB is such a reply here.
    count = 200
    with EtcdServer(args=["--max-request-bytes", "4096"]) as server:
        async with etcd.connect(server.endpoints) as client:
            start = (await client.put("big/000", "x" * 3000)).header.revision
            for index in range(1, count):
                await client.put(f"big/{index:03}", "x" * 3000)
            async with client.watch("big/", prefix=True, start_revision=start) as watcher:
                events = await take(watcher, count)
                hub = client._caller.watch_hub
                assert hub is not None
                assert hub.fragments_received > 0
    assert [e.kv.key for e in events] == [f"big/{index:03}".encode() for index in range(count)]
    assert [e.kv.mod_revision for e in events] == list(range(start, start + count))


async def test_fragments_beyond_the_receive_limit_fail_that_watcher_only() -> None:
    # Fragments of about 516 KiB each (--max-request-bytes + 512 KiB) of a 1.2 MB catch-up
    # batch: merged, they would go over the client's 1 MiB max_receive_message_size, so the
    # client stops holding them there instead of growing without a bound.
    count = 400
    with EtcdServer(args=["--max-request-bytes", "4096"]) as server:
        async with etcd.connect(server.endpoints, max_receive_message_size=1024 * 1024) as client:
            start = (await client.put("big/000", "x" * 3000)).header.revision
            for index in range(1, count):
                await client.put(f"big/{index:03}", "x" * 3000)
            async with (
                client.watch("small") as bystander,
                client.watch("big/", prefix=True, start_revision=start) as watcher,
            ):
                with trio.fail_after(30), pytest.raises(RpcError) as caught:
                    await take(watcher, count)
                assert caught.value.code is StatusCode.RESOURCE_EXHAUSTED
                assert "max_receive_message_size" in str(caught.value)
                await client.put("small", "still here")
                assert [e.kv.value for e in await take(bystander, 1)] == [b"still here"]
                hub = client._caller.watch_hub
                assert hub is not None
                assert hub.streams_opened == 1
