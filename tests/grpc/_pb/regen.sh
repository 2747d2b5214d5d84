#!/bin/sh
# Regenerates interop_pb2.py and its .pyi (messages only, no grpcio stubs) from ../interop.proto.
# Use protoc 3.21 (/usr/bin/protoc): its output imports on every protobuf runtime from 4.21 on,
# CPython and PyPy alike.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
/usr/bin/protoc --proto_path="$here/.." --python_out="$here" --pyi_out="$here" "$here/../interop.proto"
