#!/usr/bin/env bash
# Placeholder until turbosim and turbolog exist: a protocol round trip.
set -euo pipefail
python - <<'PY'
from protocol import FrameDecoder, decode_message, encode_message
from protocol.messages import Identify
wire = encode_message(Identify(), seq=1)
print("IDENTIFY on the wire:", wire.hex(" "))
print("decoded back:", decode_message(FrameDecoder().feed(wire)[0]))
PY
