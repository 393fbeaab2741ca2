#!/usr/bin/env bash
# Gzip encoders side by side on each fixture's tar (GNU tar --sort=name of the fixture; read from a file in the
# page cache, output to /dev/null): kiln's layer encoder (benches/gzfilter.rs: pgzip; level 1 is kiln's own
# deflate, 2-3 zlib-rs's; 1 and 2 threads) beside ISA-L (igzip), libdeflate (libdeflate-gzip), C zlib (pigz) — the
# measurement behind kiln's choice of encoder (README "Which gzip encoder"). Prints a markdown table per fixture:
# median wall time, mean CPU, throughput of tar per second of wall time, output size, size and time relative to
# igzip -1.
#
# Usage: benches/encoders.sh [--runs N] [--fixtures small,big,node]
# Env: BENCH_WORK (default /tmp/kiln-bench: fixtures are kept there, shared with run.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
runs=5 fixtures=small,big,node
while (($#)); do
  case "$1" in
    --runs) runs="$2"; shift ;;
    --fixtures) fixtures="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "encoders.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=benches/lib.sh
source "$here/lib.sh"
need hyperfine igzip libdeflate-gzip pigz tar python3 jq

log "cargo bench --bench gzfilter --no-run"
gzfilter=$(cd "$root" && cargo bench --locked -q --bench gzfilter --no-run --message-format=json |
  jq -r 'select(.executable != null and .target.name == "gzfilter") | .executable')
[[ -x "$gzfilter" ]] || { echo "encoders.sh: gzfilter was not built" >&2; exit 1; }

tmp=$(mktemp -d "$work/encoders.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# name | command (stdin -> stdout)
encoders=(
  "kiln pgzip -1, 2 threads (as kiln runs)|$gzfilter 1 2"
  "kiln pgzip -1, 1 thread|$gzfilter 1 1"
  "kiln pgzip -2 (zlib-rs), 1 thread|$gzfilter 2 1"
  "kiln pgzip -3 (zlib-rs), 1 thread|$gzfilter 3 1"
  "ISA-L igzip -1|igzip -1 -c"
  "ISA-L igzip -2|igzip -2 -c"
  "libdeflate -1|libdeflate-gzip -1 -c"
  "libdeflate -2|libdeflate-gzip -2 -c"
  "C zlib (pigz -1), 1 thread|pigz -p 1 -1 -c"
  "C zlib (pigz -1), 2 threads|pigz -p 2 -1 -c"
)

echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); kiln" \
  "$(cd "$root" && git describe --always --dirty 2>/dev/null || echo '?'); $(hyperfine --version); $runs runs" \
  "+ 1 warmup; isal $(dpkg-query -W -f '${Version}' isal 2>/dev/null || echo '?'), libdeflate-tools" \
  "$(dpkg-query -W -f '${Version}' libdeflate-tools 2>/dev/null || echo '?'), pigz $(pigz --version 2>&1 | cut -d' ' -f2)"
for k in ${fixtures//,/ }; do
  fx=$(fixture "$k")
  tar -C "$fx" --sort=name -cf "$tmp/$k.tar" .
  args=() sizes=()
  for e in "${encoders[@]}"; do
    name=${e%%|*} cmd=${e#*|}
    # Every encoder's output must be a gzip stream of exactly the tar.
    $cmd <"$tmp/$k.tar" >"$tmp/out.gz"
    gzip -dc "$tmp/out.gz" | cmp -s - "$tmp/$k.tar" || { echo "encoders.sh: $name: output does not decompress to the input" >&2; exit 1; }
    sizes+=("$(stat -c %s "$tmp/out.gz")")
    args+=(-n "$name" "$cmd <$tmp/$k.tar >/dev/null")
  done
  log "$k: $(du -h "$tmp/$k.tar" | cut -f1) of tar"
  hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$tmp/$k.json" "${args[@]}" >&2
  python3 - "$tmp/$k.json" "$(stat -c %s "$tmp/$k.tar")" "$k" "${sizes[@]}" <<'PY'
import json, sys
res, tar, kind, sizes = json.load(open(sys.argv[1]))["results"], int(sys.argv[2]), sys.argv[3], [int(s) for s in sys.argv[4:]]
ref = next(i for i, r in enumerate(res) if r["command"] == "ISA-L igzip -1")
t = lambda s: f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"
print(f"\n#### `{kind}` ({tar / 2**20:.1f} MiB of tar)\n")
print("| encoder | wall (median) | CPU (mean) | MB/s | size | size vs igzip -1 | wall vs igzip -1 |")
print("|---|--:|--:|--:|--:|--:|--:|")
for r, n in zip(res, sizes):
    print(f"| {r['command']} | {t(r['median'])} | {t(r['user'] + r['system'])} | {tar / r['median'] / 1e6:.0f} | "
          f"{n / 2**20:.1f} MiB | {100 * (n / sizes[ref] - 1):+.1f}% | {r['median'] / res[ref]['median']:.2f}x |")
PY
  rm -f "$tmp/$k.tar" "$tmp/out.gz"
done
