#!/usr/bin/env bash
# The long chaos soak (tests/soak.rs): the replay server on loopback with dropped
# connections, sequence gaps, malformed frames, stalls and full-speed bursts, against
# the live feed, the core and a venue that refuses (-1003, -1021) and times out.
#   tools/soak.sh [messages]        # default 1,000,000
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${1:-1000000}"
SOAK_MESSAGES="$messages" cargo test --release --test soak -- --nocapture 2>&1 | grep -E "^soak:|test result|panicked|assert"
