# Sourced by benches/run.sh and benches/encoders.sh: logging, tools (installed with apt-get as root on Debian),
# the work dir and the cached fixtures. Expects $here (the benches dir).

log() { echo "== $*" >&2; }

# need TOOL... : every tool on PATH, or install its Debian package (root), or exit with the apt-get line to run.
declare -A pkg=([hyperfine]=hyperfine [igzip]=isal [openssl]=openssl [curl]=curl [tar]=tar [python3]=python3
  [/usr/bin/time]=time [docker-registry]=docker-registry [umoci]=umoci [skopeo]=skopeo [buildah]=buildah
  [libdeflate-gzip]=libdeflate-tools [pigz]=pigz [jq]=jq)
need() {
  local missing=() t
  for t in "$@"; do command -v "$t" >/dev/null || missing+=("${pkg[$t]}"); done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]}"
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
      apt-get install -y -qq --no-install-recommends "${missing[@]}") >&2
  else
    echo "$(basename "$0"): missing tools; install them (Debian): apt-get install ${missing[*]}" >&2
    exit 1
  fi
}

# BENCH_WORK (default /tmp/kiln-bench) keeps the fixtures between runs.
work=${BENCH_WORK:-/tmp/kiln-bench}
mkdir -p "$work"
work=$(cd "$work" && pwd)

gen_stamp=$(sha256sum "$here/mkfixture.py" | cut -c1-16)
fixture() {  # fixture KIND -> path of the (cached) fixture, regenerated when mkfixture.py changed
  local fx="$work/fixture-$1"
  if [[ ! -d "$fx" || "$(cat "$fx.stamp" 2>/dev/null)" != "$gen_stamp" ]]; then
    log "generating fixture $1"
    rm -rf "$fx"
    python3 "$here/mkfixture.py" "$1" "$fx.tmp" && mv "$fx.tmp" "$fx"
    echo "$gen_stamp" >"$fx.stamp"
  fi
  echo "$fx"
}
