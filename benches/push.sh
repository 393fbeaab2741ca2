#!/usr/bin/env bash
# Kept for muscle memory: the registry steps of the suite (cold build+push vs igzip+curl, umoci+skopeo, buildah;
# unchanged rebuild+push) for one fixture.
# Usage: benches/push.sh [big|small|node] [run.sh flags...]   (see benches/run.sh --help)
set -euo pipefail
kind=${1:-big}; shift || true
exec "$(dirname "$0")/run.sh" --fixtures "$kind" --scenarios push,unchanged "$@"
