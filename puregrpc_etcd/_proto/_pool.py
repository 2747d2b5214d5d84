"""The private descriptor pool for this package's etcd descriptors, and the class builder for it.

Other etcd clients register the same names (etcdserverpb.KV, mvccpb.KeyValue, ...) in protobuf's
default pool; sharing that pool fails with "duplicate symbol" or "Conflict register" when both load.
"""

from __future__ import annotations

from typing import Any, cast

from google.protobuf import descriptor, descriptor_pool, message, reflection
from google.protobuf.internal import enum_type_wrapper

POOL = descriptor_pool.DescriptorPool()


def _build_message_class(
    message_descriptor: descriptor.Descriptor, module_name: str, qualname_prefix: str
) -> type[message.Message]:
    nested_prefix = f"{qualname_prefix}{message_descriptor.name}."
    namespace: dict[str, Any] = {
        name: _build_message_class(nested, module_name, nested_prefix)
        for name, nested in message_descriptor.nested_types_by_name.items()
    }
    namespace["DESCRIPTOR"] = message_descriptor
    namespace["__module__"] = module_name
    namespace["__qualname__"] = qualname_prefix + message_descriptor.name
    message_class = reflection.GeneratedProtocolMessageType(
        message_descriptor.name, (message.Message,), namespace
    )
    return cast("type[message.Message]", message_class)


def build_top_descriptors_and_messages(
    file_descriptor: descriptor.FileDescriptor, module_name: str, module: dict[str, Any]
) -> None:
    """Fill a generated module as protobuf's builder does, but register nothing elsewhere.

    protobuf's own builder also puts every class into the default symbol database, which under
    the pure-Python runtime (PyPy) copies our descriptors into the default pool and so brings
    back the very conflict the private pool avoids.
    """
    for name, enum_descriptor in file_descriptor.enum_types_by_name.items():
        module["_" + name.upper()] = enum_descriptor
        module[name] = enum_type_wrapper.EnumTypeWrapper(enum_descriptor)
        for enum_value in enum_descriptor.values:
            module[enum_value.name] = enum_value.number
    for name, service_descriptor in file_descriptor.services_by_name.items():
        module["_" + name.upper()] = service_descriptor
    for name, message_descriptor in file_descriptor.message_types_by_name.items():
        module[name] = _build_message_class(message_descriptor, module_name, "")
