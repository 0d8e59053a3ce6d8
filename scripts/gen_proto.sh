#!/bin/sh
# Regenerate imgfmt/proto/record_pb2.py (and its type stub, record_pb2.pyi) from record.proto.
#
# Uses protoc 3.21 (grpcio-tools 1.51.3) on purpose: its "builder" style output carries no
# runtime version check, so the committed module imports under every protobuf runtime from
# 4.21 to 7.x (tests/test_rio_protobuf.py checks the one installed). A newer protoc would
# tie the package to protobuf >= that protoc's major version.
#
#   sh scripts/gen_proto.sh            # makes a throw-away venv in a temp folder
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$(mktemp -d)/gen
python3 -m venv "$venv"
"$venv/bin/pip" install -q "grpcio-tools==1.51.3"
# -I the proto folder itself, so the descriptor's file name is "record.proto" as in the SDK.
"$venv/bin/python" -m grpc_tools.protoc -I "$here/imgfmt/proto" \
    --python_out="$here/imgfmt/proto" --pyi_out="$here/imgfmt/proto" \
    "$here/imgfmt/proto/record.proto"
rm -rf "$(dirname "$venv")"
echo "wrote $here/imgfmt/proto/record_pb2.py and record_pb2.pyi"
