#!/usr/bin/env bash
# Kept for muscle memory: the build-to-layout step of the suite (kiln vs layer-igzip1 vs umoci) for one fixture.
# Usage: benches/build.sh [big|small|node] [run.sh flags...]   (see benches/run.sh --help)
set -euo pipefail
kind=${1:-big}; shift || true
exec "$(dirname "$0")/run.sh" --fixtures "$kind" --scenarios build "$@"
