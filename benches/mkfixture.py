#!/usr/bin/env python3
"""Deterministic benchmark fixtures (same bytes on every machine; randomness only from SHAKE-256).

  mkfixture.py big OUT    200 MiB binary-like file of mixed compressibility (alternating 1 MiB blocks of
                          pseudo-random bytes and repetitive text) plus a few small files
  mkfixture.py small OUT  a Node-style dist/ of 3000 text-like files of 1-20 KiB in nested dirs (~30 MB)
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
    {"big": big, "small": small}[kind](out)
    normalize(out)
