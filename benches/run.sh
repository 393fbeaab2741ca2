#!/usr/bin/env bash
# kiln's benchmark suite: kiln beside its baselines and peers, all measured in ONE invocation on the same input
# (compare ratios within a run, never absolute times across runs or machines). For each fixture (small, big, node):
#   build      build to a local OCI layout (fresh layout and cache each run): kiln | layer-igzip1 | umoci
#   push       cold build+push to a throwaway local registry (content nobody has seen, fresh caches):
#              kiln | push-igzip1 (tar|igzip -1|curl stream) | umoci+skopeo | buildah (vfs)
#   unchanged  rebuild+push of unchanged input: kiln (warm cache) | umoci+skopeo
#   changed    rebuild+push with one file changed: kiln (warm cache) vs kiln cold with the same layers
#              (node: node_modules/ is its own --layer, the file changed is in dist/; small, big: one directory,
#              split into layers by --split auto, the default)
#   fresh      ephemeral CI runners (an empty cache every run), --version auto, the registry holding the last
#              version: unchanged rebuild+push vs `tar | openssl dgst -sha256` of the same input; one file changed
#              vs a cold build+push of the same layers; and the first publish of a new version with --version auto
#              vs an explicit new --tag (both with a warm cache and one file changed)
#   memory     (not run by default; big only) kiln's peak RSS for a 1 GiB layer (big's 200 MiB binary five
#              times, ~1 GB written to BENCH_WORK while it runs): build to a layout, build+push gzip, and zstd
# Prints hyperfine's progress on stderr and a markdown report on stdout (also written to $BENCH_WORK/report.md):
# median wall time, mean CPU (user+sys of all processes the step ran; not the registry's), peak RSS (the largest
# single process, /usr/bin/time %M), ratios, the compressed layer size beside igzip -1's, and the targets met.
#
# Usage: benches/run.sh [--quick] [--runs N] [--fixtures small,big,node]
#                       [--scenarios build,push,unchanged,changed,fresh,memory]
#                       [--skip umoci,buildah]
# Env: BENCH_WORK (default /tmp/kiln-bench: fixtures are kept there), KILN (a kiln binary; default: cargo build
#      --release --locked, found in cargo's target dir, so CARGO_TARGET_DIR is honoured).
# Needs: hyperfine, igzip (isal), openssl, curl, tar, python3, /usr/bin/time, docker-registry; peers: umoci,
#        skopeo, buildah (root only: vfs storage). As root on Debian missing ones are installed with apt-get.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
steps="$here/steps.sh"

runs=5 warmup=1 fixtures=small,big,node scenarios=build,push,unchanged,changed,fresh skip=""
while (($#)); do
  case "$1" in
    --quick) runs=2 ;;
    --runs) runs="$2"; shift ;;
    --fixtures) fixtures="$2"; shift ;;
    --scenarios) scenarios="$2"; shift ;;
    --skip) skip="$2"; shift ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
has() { [[ ",$1," == *",$2,"* ]]; }
# shellcheck source=benches/lib.sh
source "$here/lib.sh"

# --- tools -------------------------------------------------------------------------------------------------
want=(hyperfine igzip openssl curl tar python3 /usr/bin/time docker-registry)
has "$skip" umoci || want+=(umoci skopeo)
if [[ $(id -u) != 0 ]] && ! has "$skip" buildah; then
  log "not root: skipping buildah (rootless buildah needs subuid/subgid setup; run as root to include it)"
  skip="$skip,buildah"
fi
has "$skip" buildah || want+=(buildah)
need "${want[@]}"

# --- kiln --------------------------------------------------------------------------------------------------
if [[ -z "${KILN:-}" ]]; then
  log "cargo build --release --locked"
  (cd "$root" && cargo build --release --locked -q)
  target=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  KILN="$target/release/kiln"
fi
kiln=$(readlink -f "$KILN")
[[ -x "$kiln" ]] || { echo "run.sh: no kiln binary at $kiln" >&2; exit 1; }

# --- work dirs, fixtures (lib.sh) -------------------------------------------------------------------------
run=$(mktemp -d "$work/run.XXXXXX")
regpid=""
cleanup() {
  if [[ -n "$regpid" ]]; then kill "$regpid" 2>/dev/null || true; wait "$regpid" 2>/dev/null || true; fi
  rm -rf "$run"
}
trap cleanup EXIT
export SOURCE_DATE_EPOCH=1700000000

# A throwaway registry (Debian's docker-registry, CNCF distribution) on 127.0.0.1, one per fixture.
start_registry() {
  local d="$run/registry" port
  rm -rf "$d"; mkdir -p "$d/data"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$d/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $d/data}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: 127.0.0.1:$port, secret: kiln-bench}
YAML
  docker-registry serve "$d/config.yml" >"$d/log" 2>&1 &
  regpid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$port/v2/" >/dev/null || { cat "$d/log" >&2; exit 1; }
  host="127.0.0.1:$port"
}
stop_registry() {
  if [[ -n "$regpid" ]]; then kill "$regpid" 2>/dev/null || true; wait "$regpid" 2>/dev/null || true; fi
  regpid=""
  rm -rf "$run/registry"
}

# bench KIND SCENARIO [NAME PREPARE COMMAND]... : one hyperfine invocation; every command runs under
# /usr/bin/time so each timed run also records its peak RSS (KiB) in $run/rss/KIND.SCENARIO.NAME.
mkdir -p "$run/rss" "$work/results"
bench() {
  local k="$1" sc="$2" args=(); shift 2
  while (($#)); do
    args+=(-n "$1" --prepare "$2" "/usr/bin/time -a -o $run/rss/$k.$sc.$1 -f %M $3")
    shift 3
  done
  log "$k: $sc"
  hyperfine --style basic --warmup "$warmup" --runs "$runs" --export-json "$work/results/$k.$sc.json" "${args[@]}" >&2
}

for k in ${fixtures//,/ }; do
  fx=$(fixture "$k")
  d="$run/$k"; mkdir -p "$d"
  # Contexts: hard-link farms of the fixture (same inodes: the page cache is shared, all runs read warm files).
  # umoci restores the atimes it read, which bumps the directories' ctimes, which kiln's layer cache key includes:
  # so the unchanged scenario gives umoci its own copy (warm-umoci) of the same input.
  cold="$d/cold"; warm="$d/warm"; wumoci="$d/warm-umoci"; chg="$d/changed"
  for c in "$cold" "$warm" "$wumoci" "$chg"; do cp -al "$fx" "$c"; done
  "$steps" fresh "$warm"; cp "$warm/.build-id" "$wumoci/.build-id"
  subs=() layered=("--prefix" "/app")
  case "$k" in
    node) subs=(dist node_modules); changed_file=dist/bundle000.js ;;
    small) changed_file=dist/chunk00/part0/module0000.js ;;
    big) changed_file=README.md ;;
  esac
  fresh="$steps fresh $cold ${subs[*]}"
  id="\$(cat $cold/.build-id)"  # expanded by hyperfine's shell at each run, after the prepare step wrote it
  rm -rf "$work/results/$k".*

  if has "$scenarios" build; then
    cmds=(kiln "rm -rf $d/L $d/cache" "$kiln build $cold --prefix /app --to oci:$d/L:t --cache $d/cache -q"
      kiln-nodocs "rm -rf $d/L $d/cache" "$kiln build $cold --prefix /app --to oci:$d/L:t --cache $d/cache -q --sbom none --provenance none"
      layer-igzip1 "true" "$steps layer-igzip1 $cold")
    has "$skip" umoci || cmds+=(umoci "rm -rf $d/U" "$steps umoci-build $cold $d/U")
    bench "$k" build "${cmds[@]}"
    # The same work? Compressed layer sizes: kiln's (all blobs of its last layout, kiln-nodocs's: the layers, split
    # or not, plus a few KiB of config and manifest; no SBOM) and igzip -1's.
    echo "$(find "$d/L/blobs" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')" \
      "$(tar -C "$cold" --sort=name -cf - . | igzip -1 -c | wc -c)" >"$work/results/$k.sizes"
  fi
  if has "$scenarios" push || has "$scenarios" unchanged || has "$scenarios" changed || has "$scenarios" memory ||
    has "$scenarios" fresh
  then start_registry; fi
  # Every run pushes a new image under the same tag: kiln refuses to move a tag unless --force-tag (the peers
  # just overwrite it). The unchanged rebuild republishes the identical image: a no-op either way.
  if has "$scenarios" push; then
    # Cold means nothing is in the registry yet: each run pushes to a repository of its own (named by the run's
    # fresh .build-id), so no blob of an earlier run is found there — with --split, the parts without .build-id
    # would otherwise be (HEAD-skipped), which the peers' single layer never is.
    cmds=(kiln "$fresh; rm -rf $d/cache" "$kiln build $cold --prefix /app --to $host/bench/kiln-$id:t --force-tag --cache $d/cache -q"
      kiln-nodocs "$fresh; rm -rf $d/cache" "$kiln build $cold --prefix /app --to $host/bench/kiln-$id:t --force-tag --cache $d/cache -q --sbom none --provenance none"
      push-igzip1 "$fresh" "$steps push-igzip1 $cold http://$host/v2/bench/igzip-$id")
    has "$skip" umoci ||
      cmds+=(umoci+skopeo "$fresh; rm -rf $d/U" "$steps umoci-push $cold $d/U $host/bench/umoci-$id:t")
    has "$skip" buildah || cmds+=(buildah "$fresh; rm -rf $d/B; buildah --root $d/B/root --runroot $d/B/run \
--storage-driver vfs images >/dev/null" "$steps buildah-push $cold $d/B $host/bench/buildah-$id:t")
    bench "$k" push "${cmds[@]}"
    rm -rf "$d/B"
  fi
  if has "$scenarios" unchanged; then
    # The warmup run fills kiln's cache and the registry; the timed runs rebuild the same input.
    # --version auto, as users run it: the registry's version of this image is found and reused.
    cmds=(kiln "true" "$kiln build $warm --prefix /app --to $host/bench/kiln-warm --version auto --cache $d/cache-warm -q"
      kiln-nodocs "true" "$kiln build $warm --prefix /app --to $host/bench/kiln-warm-nodocs --version auto --cache $d/cache-warm-nodocs -q --sbom none --provenance none")
    has "$skip" umoci ||
      cmds+=(umoci+skopeo "rm -rf $d/U" "$steps umoci-push $wumoci $d/U $host/bench/umoci-warm:t")
    bench "$k" unchanged "${cmds[@]}"
    # It must have reused: nothing compressed, nothing uploaded.
    out=$($kiln build "$warm" --prefix /app --to "$host/bench/kiln-warm" --version auto --cache "$d/cache-warm" 2>&1)
    grep -q '(0 compressed' <<<"$out" && grep -q ' 0 blobs uploaded' <<<"$out" ||
      { echo "run.sh: kiln's unchanged rebuild did not reuse everything:" >&2; echo "$out" >&2; exit 1; }
  fi
  if has "$scenarios" changed; then
    # node: node_modules/ as its own layer (unchanged: its cached blob is reused), dist/ the main layer.
    if [[ $k == node ]]; then
      lay() { echo "$1/dist --prefix /app/dist --layer $1/node_modules:/app/node_modules"; }
    else
      lay() { echo "$1 --prefix /app"; }
    fi
    cmds=(kiln "$steps change $chg/$changed_file $fx/$changed_file"
      "$kiln build $(lay "$chg") --to $host/bench/kiln-changed:t --force-tag --cache $d/cache-changed -q"
      kiln-cold "$fresh; rm -rf $d/cache" "$kiln build $(lay "$cold") --to $host/bench/kiln-cold-$id:t --cache $d/cache -q"
      kiln-nodocs "$steps change $chg/$changed_file $fx/$changed_file"
      "$kiln build $(lay "$chg") --to $host/bench/kiln-changed-nodocs:t --force-tag --cache $d/cache-changed-nodocs -q --sbom none --provenance none"
      kiln-cold-nodocs "$fresh; rm -rf $d/cache" "$kiln build $(lay "$cold") --to $host/bench/kiln-cold-nodocs-$id:t --cache $d/cache -q --sbom none --provenance none")
    bench "$k" changed "${cmds[@]}"
    # Only what changed was compressed again: node_modules/ (its own --layer) all from the cache, and for small and
    # big only the part of the split main layer holding the changed file.
    "$steps" change "$chg/$changed_file" "$fx/$changed_file"
    # shellcheck disable=SC2046
    out=$($kiln build $(lay "$chg") --to "$host/bench/kiln-changed:t" --force-tag --cache "$d/cache-changed" 2>&1)
    grep -q '(1 compressed,' <<<"$out" ||
      { echo "run.sh: kiln's one-file-changed rebuild compressed more than one layer:" >&2; echo "$out" >&2; exit 1; }
  fi
  if has "$scenarios" fresh; then
    if [[ $k == node ]]; then
      lay() { echo "$1/dist --prefix /app/dist --layer $1/node_modules:/app/node_modules"; }
    else
      lay() { echo "$1 --prefix /app"; }
    fi
    fu="$d/fresh-unchanged"; fc="$d/fresh-changed"; fa="$d/fresh-auto"; ft="$d/fresh-tag"
    for c in "$fu" "$fc" "$fa" "$ft"; do cp -al "$fx" "$c"; done
    "$steps" fresh "$fu"
    auto="--version auto -q"
    # The registry holds the last version of each: the unchanged one once, the others each run's predecessor.
    for c in "$fu" "$fc" "$fa"; do
      # shellcheck disable=SC2046
      "$kiln" build $(lay "$c") --to "$host/bench/$(basename "$c")" $auto --cache "$d/seed" >/dev/null
    done
    cmds=(tar-sha256 "true" "$steps tar-sha256 $fu"
      kiln-unchanged "rm -rf $d/cf" "$kiln build $(lay "$fu") --to $host/bench/fresh-unchanged $auto --cache $d/cf"
      kiln-changed "$steps change $fc/$changed_file $fx/$changed_file; rm -rf $d/cf"
      "$kiln build $(lay "$fc") --to $host/bench/fresh-changed $auto --cache $d/cf"
      kiln-cold "$fresh; rm -rf $d/cf" "$kiln build $(lay "$cold") --to $host/bench/fresh-cold-$id $auto --cache $d/cf"
      kiln-auto "$steps change $fa/$changed_file $fx/$changed_file"
      "$kiln build $(lay "$fa") --to $host/bench/fresh-auto $auto --cache $d/ca"
      kiln-tag "$steps change $ft/$changed_file $fx/$changed_file"
      "$kiln build $(lay "$ft") --to $host/bench/fresh-tag:\$(date +%s%N) -q --cache $d/ct")
    bench "$k" fresh "${cmds[@]}"
    # It must have taken every layer from the registry, and compressed only the changed one.
    rm -rf "$d/cf"
    # shellcheck disable=SC2046
    out=$($kiln build $(lay "$fu") --to "$host/bench/fresh-unchanged" --version auto --cache "$d/cf" 2>&1)
    grep -q '(0 compressed, 0 unchanged from the layer cache' <<<"$out" && grep -q ' 0 blobs uploaded' <<<"$out" ||
      { echo "run.sh: kiln's fresh unchanged rebuild did not take everything from the registry:" >&2; echo "$out" >&2; exit 1; }
    rm -rf "$d/cf"; "$steps" change "$fc/$changed_file" "$fx/$changed_file"
    # shellcheck disable=SC2046
    out=$($kiln build $(lay "$fc") --to "$host/bench/fresh-changed" --version auto --cache "$d/cf" 2>&1)
    grep -q '(1 compressed, 0 unchanged from the layer cache' <<<"$out" ||
      { echo "run.sh: kiln's fresh one-file-changed rebuild compressed more than one layer:" >&2; echo "$out" >&2; exit 1; }
  fi
  if has "$scenarios" memory && [[ $k == big ]]; then
    # Memory stays flat as a layer grows: one run of each step on a 1 GiB layer, fresh caches.
    g="$d/gib"; mkdir -p "$g"
    for _ in 1 2 3 4 5; do cat "$fx/bin/server"; done >"$g/app.bin"
    rss() { rm -rf "$d/gc"; /usr/bin/time -f %M -o "$run/rss.gib" "$@" >/dev/null; echo "$(($(cat "$run/rss.gib") / 1024)) MiB"; }
    log "$k: memory (1 GiB layer)"
    {
      echo "| 1 GiB layer (kiln) | peak RSS |"
      echo "|---|--:|"
      echo "| build → OCI layout, gzip | $(rss "$kiln" build "$g" --prefix /app --to "oci:$d/GL:t" --cache "$d/gc" -q) |"
      echo "| build+push, gzip (streamed) | $(rss "$kiln" build "$g" --prefix /app --to "$host/bench/gib:t" --cache "$d/gc" -q) |"
      echo "| build+push, zstd | $(rss "$kiln" build "$g" --prefix /app --compression zstd --to "$host/bench/gibz:t" --cache "$d/gc" -q) |"
    } >"$work/results/$k.memory.md"
    rm -rf "$g" "$d/GL" "$d/gc"
  fi
  stop_registry
  rm -rf "$d"
done

# --- report ------------------------------------------------------------------------------------------------
{
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"\
    "$(free -g | awk '/^Mem:/{print $2}') GiB RAM, $(uname -sr); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "kiln $(cd "$root" && git describe --always --dirty 2>/dev/null || echo '?'), $runs runs + $warmup warmup per command;"\
    "$(hyperfine --version), $(umoci --version 2>/dev/null | head -1), $(skopeo --version 2>/dev/null),"\
    "$(buildah --version 2>/dev/null | cut -d'(' -f1)"
  echo
  python3 "$here/report.py" "$work/results" "$run/rss" ${fixtures//,/ }
  for m in "$work/results/"*.memory.md; do
    if [[ -f "$m" ]]; then echo; cat "$m"; fi
  done
} | tee "$work/report.md"
