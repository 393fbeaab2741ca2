#!/usr/bin/env python3
"""Deterministic benchmark fixtures (same bytes on every machine; randomness only from SHAKE-256).

  mkfixture.py big OUT    200 MiB binary-like file of mixed compressibility (alternating 1 MiB blocks of
                          pseudo-random bytes and repetitive text) plus a few small files
  mkfixture.py small OUT  a Node-style dist/ of 3000 text-like files of 1-20 KiB in nested dirs (~30 MB)
  mkfixture.py node OUT   a Node app (~90 MB): node_modules/ of exactly 20000 files (scoped and nested packages,
                          each with package.json, index.js, lib/*.js, some .d.ts/.map/README.md; mostly 0.2-8 KiB,
                          a tail to 32 KiB), a dist/ of 120 bundle files (4-64 KiB) and package.json
"""
import hashlib, os, sys

SEED = b"kiln-bench-v1"

def shake(label, n):
    return hashlib.shake_256(SEED + b"/" + label.encode()).digest(n)

WORDS = (b"function const let return if else for while new this import export default from class async "
         b"await try catch throw null undefined true false module exports require Object Array String "
         b"Promise JSON console log error props state children React useState useEffect document window").split()

def text(label, size):
    rnd = shake(label, size // 4 + 16)
    out, i = bytearray(), 0
    while len(out) < size:
        out += WORDS[rnd[i % len(rnd)] % len(WORDS)] + (b"\n" if rnd[(i + 1) % len(rnd)] % 13 == 0 else b" ")
        i += 2
    return bytes(out[:size])

def big(out):
    os.makedirs(f"{out}/bin", exist_ok=True)
    with open(f"{out}/bin/server", "wb") as f:
        for i in range(200):
            f.write(shake(f"blk{i}", 1 << 20) if i % 2 == 0 else text(f"txt{i}", 1 << 20))
    os.chmod(f"{out}/bin/server", 0o755)
    for name in ("README.md", "config.json", "VERSION"):
        with open(f"{out}/{name}", "wb") as f:
            f.write(text(name, 2048))

def small(out):
    sizes = shake("sizes", 2 * 3000)
    for i in range(3000):
        d = f"{out}/dist/chunk{i % 40:02d}/part{i % 7}"
        os.makedirs(d, exist_ok=True)
        size = 1024 + int.from_bytes(sizes[2 * i:2 * i + 2], "little") % (19 * 1024)
        with open(f"{d}/module{i:04d}.js", "wb") as f:
            f.write(text(f"m{i}", size))
    with open(f"{out}/package.json", "wb") as f:
        f.write(b'{"name":"bench","version":"1.0.0","main":"dist/index.js"}\n')

class Rng:
    """Deterministic integers from SHAKE-256 (Python's random is not guaranteed stable across versions)."""
    def __init__(self, label):
        self.buf, self.i = shake(label, 1 << 20), 0
    def below(self, n):
        if self.i + 4 > len(self.buf):
            self.buf, self.i = hashlib.shake_256(self.buf[-32:]).digest(1 << 20), 0
        v = int.from_bytes(self.buf[self.i:self.i + 4], "little")
        self.i += 4
        return v % n

def node_size(r):
    # Mostly small files, a long tail of bigger ones (as in a real node_modules).
    k = r.below(100)
    return 200 + r.below(2000) if k < 55 else 2000 + r.below(6000) if k < 90 else 8000 + r.below(24000)

def node_pkg(r, out, base, name, files_left, depth):
    """One package under OUT/base/name; returns the number of files written (<= files_left)."""
    rel_d = f"{base}/{name}"
    d = f"{out}/{rel_d}"
    os.makedirs(d, exist_ok=True)
    wrote = 0
    def put(rel, data):
        nonlocal wrote
        os.makedirs(os.path.dirname(f"{d}/{rel}"), exist_ok=True)
        with open(f"{d}/{rel}", "wb") as f:
            f.write(data)
        wrote += 1
    ver = f"{r.below(9)}.{r.below(30)}.{r.below(20)}"
    put("package.json", b'{"name":"%s","version":"%s","main":"index.js","license":"MIT"}\n' % (name.encode(), ver.encode()))
    names = ["index.js"] + [f"lib/{w}{i}.js" for i, w in enumerate(
        WORDS[r.below(len(WORDS))].decode() for _ in range(1 + r.below(24)))]
    extra = r.below(4)
    names += ["README.md"] * (extra > 0) + ["index.d.ts"] * (extra > 1) + ["index.js.map"] * (extra > 2)
    for n in names:
        if wrote >= files_left:
            return wrote
        put(n, text(f"{rel_d}/{n}", node_size(r)))
    if depth == 0 and r.below(100) < 15:  # a nested node_modules with 1-3 other versions of packages
        for j in range(1 + r.below(3)):
            if wrote >= files_left:
                break
            wrote += node_pkg(r, out, f"{rel_d}/node_modules", f"dep{r.below(500)}-{j}", files_left - wrote, 1)
    return wrote

def node(out):
    r, total, i = Rng("node"), 20000, 0
    while total > 0:
        name = f"pkg{i:04d}" if r.below(100) >= 10 else f"@scope{r.below(12)}/pkg{i:04d}"
        total -= node_pkg(r, out, "node_modules", name, total, 0)
        i += 1
    os.makedirs(f"{out}/dist/assets", exist_ok=True)
    for i in range(120):
        sub = "assets/" if i % 4 == 3 else ""
        with open(f"{out}/dist/{sub}bundle{i:03d}.js", "wb") as f:
            f.write(text(f"dist{i}", 4096 + r.below(60000)))
    with open(f"{out}/package.json", "wb") as f:
        f.write(b'{"name":"bench-node","version":"1.0.0","main":"dist/bundle000.js"}\n')

def normalize(out):
    for root, dirs, files in os.walk(out):
        for n in files:
            p = os.path.join(root, n)
            if not os.access(p, os.X_OK):
                os.chmod(p, 0o644)
            os.utime(p, (1700000000, 1700000000))
        os.chmod(root, 0o755)
        os.utime(root, (1700000000, 1700000000))

if __name__ == "__main__":
    kind, out = sys.argv[1], sys.argv[2]
    {"big": big, "small": small, "node": node}[kind](out)
    normalize(out)
