#!/usr/bin/env bash
# One step of the benchmark suite, as hyperfine runs it (benches/run.sh drives this; it is not a user command).
#   steps.sh layer-igzip1 DIR          tar | tee >(sha256 = diff_id) | igzip -1 | sha256 = digest: everything one gzip
#                                      layer needs, in one pass, no I/O (the floor for `kiln build --to oci:`)
#   steps.sh push-igzip1 DIR URL       the same pass streamed into a registry: POST uploads/, curl PATCH (chunked
#                                      body = the igzip output), PUT ?digest= (the floor for a cold build+push;
#                                      URL = http://HOST/v2/REPO; it pushes the layer blob only: no config, manifest)
#   steps.sh tar-sha256 DIR            tar | openssl dgst -sha256: reading and hashing the input once (the floor for
#                                      a rebuild that must look at every byte, e.g. on a runner without a cache)
#   steps.sh umoci-build DIR LAYOUT    umoci init + new + insert DIR at /app (LAYOUT must not exist)
#   steps.sh umoci-push DIR LAYOUT REF umoci-build, then skopeo copy oci:LAYOUT:app docker://REF
#   steps.sh buildah-push DIR STORE REF buildah (vfs storage under STORE) from scratch, copy DIR to /app, commit, push
#   steps.sh fresh DIR [SUB...]        write a unique DIR/.build-id (and DIR/SUB/.build-id): content nobody has seen
#   steps.sh change FILE ORIG          replace FILE (a new inode: it may be a hard link into the fixture) with ORIG's
#                                      bytes plus a unique last line: one file changed
# Tars are GNU tar --sort=name; hashes are `openssl dgst -sha256` (Debian's coreutils sha256sum has no SHA-NI).
set -euo pipefail

tarc() { tar -C "$1" --sort=name -cf - .; }
sha() { openssl dgst -sha256 -r | cut -c1-64; }
uniq_id() { echo "$(date +%s%N)-$$-$RANDOM"; }
umoci_flags=()
[[ $(id -u) == 0 ]] || umoci_flags=(--rootless)

umoci_build() {
  local dir="$1" layout="$2"
  umoci init --layout "$layout"
  umoci new --image "$layout:app"
  umoci insert "${umoci_flags[@]}" --image "$layout:app" "$dir" /app
}

step="$1"; shift
case "$step" in
  layer-igzip1)
    t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
    mkfifo "$t/raw"
    sha <"$t/raw" >"$t/diff_id" &
    tarc "$1" | tee "$t/raw" | igzip -1 -c | sha >"$t/digest"
    wait ;;
  push-igzip1)
    dir="$1" url="$2"
    t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
    mkfifo "$t/raw" "$t/gz"
    sha <"$t/raw" >"$t/diff_id" &
    sha <"$t/gz" >"$t/digest" &
    loc=$(curl -fsS -X POST -D - -o /dev/null "$url/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
    [[ "$loc" == http* ]] || loc="${url%%/v2/*}$loc"
    tarc "$dir" | tee "$t/raw" | igzip -1 -c | tee "$t/gz" |
      curl -fsS -X PATCH -H 'Expect:' -H 'Content-Type: application/octet-stream' -T - -D "$t/hdr" -o /dev/null "$loc"
    wait
    loc=$(tr -d '\r' <"$t/hdr" | awk 'tolower($1)=="location:"{print $2}')
    [[ "$loc" == http* ]] || loc="${url%%/v2/*}$loc"
    [[ "$loc" == *\?* ]] && sep='&' || sep='?'
    curl -fsS -X PUT -H 'Expect:' -o /dev/null "$loc${sep}digest=sha256:$(cat "$t/digest")" ;;
  tar-sha256) tarc "$1" | sha >/dev/null ;;
  umoci-build) umoci_build "$1" "$2" ;;
  umoci-push)
    umoci_build "$1" "$2"
    skopeo copy --quiet --dest-tls-verify=false "oci:$2:app" "docker://$3" ;;
  buildah-push)
    dir="$1" store="$2" ref="$3"
    B=(buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs)
    c=$("${B[@]}" from --quiet scratch)
    "${B[@]}" copy --quiet "$c" "$dir" /app >/dev/null
    "${B[@]}" commit --quiet --rm "$c" localhost/bench/app:latest >/dev/null
    "${B[@]}" push --quiet --tls-verify=false localhost/bench/app:latest "docker://$ref" ;;
  fresh)
    dir="$1"; shift
    for sub in . "$@"; do uniq_id >"$dir/$sub/.build-id"; done ;;
  change)
    { cat "$2"; echo "// $(uniq_id)"; } >"$1.tmp"
    mv "$1.tmp" "$1" ;;
  *) echo "steps.sh: unknown step $step" >&2; exit 2 ;;
esac
