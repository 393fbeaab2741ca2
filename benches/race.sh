#!/usr/bin/env bash
# The version race at scale (issue 20): 16 `kiln build --version auto` publishers of different images into one
# repository of a real registry (Debian's docker-registry on 127.0.0.1), 20 times, then 20 times more through a
# proxy answering tag writes with 429 and 5xx. Every repetition checks that the 16 processes printed 16 distinct
# versions and that each version points at the digest its process printed (tests/it/registry/versions.rs). About
# two minutes on 2 cores.
#
# Usage: benches/race.sh            the default settle floor (100 ms)
#        RACE_SETTLE_MS=0 benches/race.sh   the floor off (only 3x the measured round trip): shows why it exists
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --locked --test it concurrent_auto_versions_twenty_repetitions -- --ignored --nocapture
