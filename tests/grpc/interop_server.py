"""The grpcio server the transport's interop tests talk to; a script run in its own process.
It binds 127.0.0.1, prints its port on the first line of stdout and serves until killed.
grpcio is imported only here, never in the test process, which so shows our transport alone."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from _pb import interop_pb2 as pb  # the script's own directory is first on sys.path

SERVICE = "puregrpc.testing.TestService"
ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"
CALL_ID_KEY = "x-call-id"
# Trailing metadata of streaming output calls: the sha256 of every payload body sent, in order.
PAYLOAD_DIGEST_KEY = "x-payload-sha256"

CANCELLATION_SETTLE_TIME = 0.1

STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
call_outcomes: dict[str, str] = {}

Context = grpc.aio.ServicerContext


async def begin_call(context: Context) -> None:
    """Echoes the metadata the interop cases ask for, as grpc's interop server does."""
    metadata = dict(context.invocation_metadata() or ())
    if ECHO_INITIAL_KEY in metadata:
        await context.send_initial_metadata(((ECHO_INITIAL_KEY, metadata[ECHO_INITIAL_KEY]),))
    if ECHO_TRAILING_KEY in metadata:
        context.set_trailing_metadata(((ECHO_TRAILING_KEY, metadata[ECHO_TRAILING_KEY]),))


def call_id_of(context: Context) -> str | None:
    value = dict(context.invocation_metadata() or ()).get(CALL_ID_KEY)
    return value if isinstance(value, str) else None


def recorded(behaviour: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a method so that calls tagged with `x-call-id` leave their outcome behind.

    A call is "cancelled" when its handler was interrupted (the client reset the stream or its
    deadline passed), "aborted" when it ended with a status on purpose, "ok" otherwise.
    grpcio.aio ends the request stream of a reset call as if the client had half-closed it and
    cancels the handler's task only a moment later, so a tagged call waits a little before it
    counts as ok."""

    def finish(call_id: str | None, state: str) -> None:
        if call_id is not None:
            call_outcomes[call_id] = state

    if inspect.isasyncgenfunction(behaviour):

        async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
            call_id = call_id_of(context)
            finish(call_id, "running")
            state = "cancelled"
            try:
                async for response in behaviour(request, context):
                    yield response
                if call_id is not None:
                    await asyncio.sleep(CANCELLATION_SETTLE_TIME)
                state = "ok"
            except grpc.aio.AbortError:
                state = "aborted"
                raise
            finally:
                finish(call_id, state)

        return streaming

    async def unary(request: Any, context: Context) -> Any:
        call_id = call_id_of(context)
        finish(call_id, "running")
        state = "cancelled"
        try:
            response = await behaviour(request, context)
            if call_id is not None:
                await asyncio.sleep(CANCELLATION_SETTLE_TIME)
            state = "ok"
            return response
        except grpc.aio.AbortError:
            state = "aborted"
            raise
        finally:
            finish(call_id, state)

    return unary


async def end_with_status(context: Context, status: pb.EchoStatus) -> None:
    if status.code != 0:
        await context.abort(STATUS_BY_NUMBER[status.code], status.message)


def payload_of(size: int) -> pb.Payload:
    # Random bodies, so that a reordered or duplicated chunk cannot pass the digest check.
    return pb.Payload(body=os.urandom(size))


async def empty_call(request: pb.Empty, context: Context) -> pb.Empty:
    await begin_call(context)
    return pb.Empty()


async def unary_call(request: pb.SimpleRequest, context: Context) -> pb.SimpleResponse:
    await begin_call(context)
    time_remaining = context.time_remaining()
    if request.sleep_ms:
        await asyncio.sleep(request.sleep_ms / 1000)
    await end_with_status(context, request.response_status)
    return pb.SimpleResponse(
        payload=pb.Payload(body=bytes(request.response_size)),
        request_payload_size=len(request.payload.body),
        peer=context.peer(),
        time_remaining_ms=-1 if time_remaining is None else int(time_remaining * 1000),
    )


async def stream_out(
    request: pb.StreamingOutputCallRequest, context: Context, digest: Any
) -> AsyncIterator[pb.StreamingOutputCallResponse]:
    for parameters in request.response_parameters:
        if parameters.interval_us:
            await asyncio.sleep(parameters.interval_us / 1_000_000)
        payload = payload_of(parameters.size)
        digest.update(payload.body)
        yield pb.StreamingOutputCallResponse(payload=payload)


def digest_trailer(context: Context, digest: Any) -> None:
    trailers = tuple(context.trailing_metadata() or ())
    context.set_trailing_metadata((*trailers, (PAYLOAD_DIGEST_KEY, digest.hexdigest())))


async def streaming_output_call(
    request: pb.StreamingOutputCallRequest, context: Context
) -> AsyncIterator[pb.StreamingOutputCallResponse]:
    await begin_call(context)
    digest = hashlib.sha256()
    async for response in stream_out(request, context, digest):
        yield response
    digest_trailer(context, digest)
    await end_with_status(context, request.response_status)


async def streaming_input_call(
    requests: AsyncIterator[pb.StreamingInputCallRequest], context: Context
) -> pb.StreamingInputCallResponse:
    await begin_call(context)
    total = 0
    async for request in requests:
        total += len(request.payload.body)
    return pb.StreamingInputCallResponse(aggregated_payload_size=total)


async def full_duplex_call(
    requests: AsyncIterator[pb.StreamingOutputCallRequest], context: Context
) -> AsyncIterator[pb.StreamingOutputCallResponse]:
    await begin_call(context)
    digest = hashlib.sha256()
    async for request in requests:
        await end_with_status(context, request.response_status)
        async for response in stream_out(request, context, digest):
            yield response
    digest_trailer(context, digest)


async def half_duplex_call(
    requests: AsyncIterator[pb.StreamingOutputCallRequest], context: Context
) -> AsyncIterator[pb.StreamingOutputCallResponse]:
    await begin_call(context)
    buffered = [request async for request in requests]
    digest = hashlib.sha256()
    for request in buffered:
        async for response in stream_out(request, context, digest):
            yield response
    digest_trailer(context, digest)


async def get_call_outcome(request: pb.CallOutcomeRequest, context: Context) -> pb.CallOutcome:
    return pb.CallOutcome(state=call_outcomes.get(request.call_id, "unknown"))


def handler(
    kind: Callable[..., grpc.RpcMethodHandler],
    behaviour: Callable[..., Awaitable[Any] | AsyncIterator[Any]],
    request_type: Any,
    response_type: Any,
) -> grpc.RpcMethodHandler:
    return kind(
        recorded(behaviour),
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


def generic_handler() -> grpc.GenericRpcHandler:
    unary, stream_in = grpc.unary_unary_rpc_method_handler, grpc.stream_unary_rpc_method_handler
    stream_out_, duplex = (
        grpc.unary_stream_rpc_method_handler,
        grpc.stream_stream_rpc_method_handler,
    )
    out_request, out_response = pb.StreamingOutputCallRequest, pb.StreamingOutputCallResponse
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "EmptyCall": handler(unary, empty_call, pb.Empty, pb.Empty),
            "UnaryCall": handler(unary, unary_call, pb.SimpleRequest, pb.SimpleResponse),
            "StreamingOutputCall": handler(
                stream_out_, streaming_output_call, out_request, out_response
            ),
            "StreamingInputCall": handler(
                stream_in,
                streaming_input_call,
                pb.StreamingInputCallRequest,
                pb.StreamingInputCallResponse,
            ),
            "FullDuplexCall": handler(duplex, full_duplex_call, out_request, out_response),
            "HalfDuplexCall": handler(duplex, half_duplex_call, out_request, out_response),
            "GetCallOutcome": handler(
                unary, get_call_outcome, pb.CallOutcomeRequest, pb.CallOutcome
            ),
        },
    )


def tls_credentials(arguments: argparse.Namespace) -> grpc.ServerCredentials | None:
    if not arguments.tls_cert:
        return None
    key_and_chain = [(Path(arguments.tls_key).read_bytes(), Path(arguments.tls_cert).read_bytes())]
    client_ca = Path(arguments.client_ca).read_bytes() if arguments.client_ca else None
    return grpc.ssl_server_credentials(
        key_and_chain, root_certificates=client_ca, require_client_auth=client_ca is not None
    )


async def serve(arguments: argparse.Namespace) -> None:
    options: list[tuple[str, int]] = [
        # A restarted server must get the same port back, and no other process may share it.
        ("grpc.so_reuseport", 0),
        # The keepalive tests ping every fraction of a second; a stock server would GOAWAY.
        ("grpc.http2.min_ping_interval_without_data_ms", 10),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_receive_message_length", arguments.max_receive_message_size),
        ("grpc.max_send_message_length", 256 * 1024 * 1024),
    ]
    if arguments.max_concurrent_streams:
        options.append(("grpc.max_concurrent_streams", arguments.max_concurrent_streams))
    if arguments.max_connection_age_ms:
        # The server sends GOAWAY when a connection reaches this age, letting running calls end.
        options.append(("grpc.max_connection_age_ms", arguments.max_connection_age_ms))
        options.append(("grpc.max_connection_age_grace_ms", 10_000))
    if arguments.max_metadata_size:
        options.append(("grpc.max_metadata_size", arguments.max_metadata_size))
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((generic_handler(),))
    address = f"127.0.0.1:{arguments.port}"
    credentials = tls_credentials(arguments)
    if credentials is not None:
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise SystemExit(f"cannot bind 127.0.0.1:{arguments.port}")
    await server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-concurrent-streams", type=int, default=0)
    parser.add_argument("--max-metadata-size", type=int, default=0)
    parser.add_argument("--max-connection-age-ms", type=int, default=0)
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve TLS (ALPN h2)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--client-ca", help="PEM CA: require client certificates it signed")
    parser.add_argument("--max-receive-message-size", type=int, default=4 * 1024 * 1024)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
