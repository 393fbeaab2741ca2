#!/usr/bin/env bash
# Benchmark: `kiln build` of the 200 MiB fixture into a fresh local layout, against baselines run in the same
# invocation on the same input (page cache warm for all):
#   igzip-onepass : tar | tee >(openssl sha256 = diff_id) | igzip -1 | openssl sha256   (the practical floor)
#   gzip1-sha256sum: tar | gzip -1 | sha256sum                                          (issue 2's yardstick)
# Prints hyperfine's table and kiln's wall time as ratios. Needs: hyperfine, isal (igzip), openssl, python3.
# Usage: benches/build.sh [big|small] [extra kiln flags...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kind=${1:-big}; shift || true
work=${BENCH_WORK:-/tmp/kiln-bench}
mkdir -p "$work"
fx="$work/fixture-$kind"
[[ -d "$fx" ]] || python3 "$here/mkfixture.py" "$kind" "$fx"
(cd "$here/.." && cargo build --release --locked -q)
kiln="$here/../target/release/kiln"
export SOURCE_DATE_EPOCH=1700000000
json="$work/result-$kind.json"
hyperfine --warmup 1 --runs "${RUNS:-5}" --export-json "$json" \
  --prepare "rm -rf $work/layout" \
  -n kiln "$kiln build $fx --to oci:$work/layout -q $*" \
  -n igzip-onepass "bash -c 'tar -C $fx --sort=name -cf - . | tee >(openssl dgst -sha256 >/dev/null) | igzip -1 -c | openssl dgst -sha256 >/dev/null'" \
  -n gzip1-sha256sum "bash -c 'tar -C $fx --sort=name -cf - . | gzip -1 | sha256sum >/dev/null'" >&2
python3 - "$json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
k = r["kiln"]["median"]
for base in ("igzip-onepass", "gzip1-sha256sum"):
    b = r[base]["median"]
    print(f"kiln {k:.3f}s vs {base} {b:.3f}s: ratio {k/b:.2f}x (median wall time)")
PY
/usr/bin/time -f "kiln peak RSS: %M KiB, wall %e s, user %U s, sys %S s" "$kiln" build "$fx" --to "oci:$work/layout-rss" -q "$@" >/dev/null
rm -rf "$work/layout" "$work/layout-rss"
