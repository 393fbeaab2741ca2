#!/usr/bin/env bash
# Benchmark: `kiln build DIR --to REGISTRY/REPO` (cold: new content every run, so nothing is skipped) against
# `skopeo copy oci:LAYOUT docker://REGISTRY/REPO` of the same image from a layout, in the same invocation, on a
# throwaway local registry (Debian's docker-registry on 127.0.0.1). Also: unchanged rebuild+push.
# Prints hyperfine's table and ratios. Needs: hyperfine, docker-registry, skopeo, python3.
# Usage: benches/push.sh [big|small]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kind=${1:-big}
work=${BENCH_WORK:-/tmp/kiln-bench}
mkdir -p "$work"
fx="$work/fixture-$kind"
[[ -d "$fx" ]] || python3 "$here/mkfixture.py" "$kind" "$fx"
(cd "$here/.." && cargo build --release --locked -q)
kiln="$here/../target/release/kiln"
export SOURCE_DATE_EPOCH=1700000000 KILN_CACHE="$work/cache"

# A throwaway registry on a free loopback port.
reg=$(mktemp -d "$work/registry.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$reg/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $reg/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port, secret: bench}
YAML
docker-registry serve "$reg/config.yml" >"$reg/log" 2>&1 &
regpid=$!
trap 'kill $regpid 2>/dev/null; rm -rf "$reg" "$work/cache" "$work/ctx" "$work/layout"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
host=127.0.0.1:$port

# Cold runs need content no one has seen: a hardlinked copy of the fixture plus a unique file per run.
cp -al "$fx" "$work/ctx"
fresh='f=$(date +%s%N); echo $f > '"$work"'/ctx/.build-id; rm -rf '"$work"'/cache '"$work"'/layout'
# The peer: skopeo pushes a layout that kiln built (its build time is not counted).
hyperfine --warmup 1 --runs "${RUNS:-5}" --export-json "$work/push-$kind.json" \
  -n kiln-build-push --prepare "$fresh" "$kiln build $work/ctx --to $host/bench/kiln -q" \
  -n skopeo-copy --prepare "$fresh; $kiln build $work/ctx --to oci:$work/layout:t -q" \
    "skopeo copy --quiet --dest-tls-verify=false oci:$work/layout:t docker://$host/bench/skopeo:t" \
  -n kiln-unchanged-rebuild-push --prepare "true" "$kiln build $work/ctx --to $host/bench/kiln -q" >&2
python3 - "$work/push-$kind.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
k, s, u = r["kiln-build-push"], r["skopeo-copy"], r["kiln-unchanged-rebuild-push"]
print(f"build+push: kiln {k:.3f}s vs skopeo copy (push only) {s:.3f}s: ratio {k/s:.2f}x")
print(f"unchanged rebuild+push: kiln {u:.3f}s ({u/k:.2f}x of cold)")
PY
