"""Generated protobuf modules (see ``record.proto``; regenerate with ``scripts/gen_proto.sh``).

``record_pb2`` is protoc output, committed as generated: do not edit it by hand.
"""
