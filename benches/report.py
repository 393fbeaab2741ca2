#!/usr/bin/env python3
"""benches/run.sh's report: RESULTS_DIR (hyperfine JSON per fixture.scenario), RSS_DIR (one %M line per run, per
fixture.scenario.command) -> markdown tables on stdout. Usage: report.py RESULTS_DIR RSS_DIR FIXTURE..."""
import json, os, sys

results, rss_dir, fixtures = sys.argv[1], sys.argv[2], sys.argv[3:]
STEPS = [  # scenario, label, [(command, shown as)]
    ("build", "build → OCI layout", [("kiln", "kiln"), ("kiln-nodocs", "kiln --sbom none --provenance none"),
                                     ("layer-igzip1", "layer-igzip1 (one pass)"), ("umoci", "umoci")]),
    ("push", "cold build+push", [("kiln", "kiln"), ("kiln-nodocs", "kiln --sbom none --provenance none"),
                                 ("push-igzip1", "igzip+curl stream"),
                                 ("umoci+skopeo", "umoci+skopeo"), ("buildah", "buildah (vfs)")]),
    ("unchanged", "unchanged rebuild+push, --version auto", [("kiln", "kiln (warm cache)"),
                                                            ("kiln-nodocs", "kiln --sbom none --provenance none"),
                                                            ("umoci+skopeo", "umoci+skopeo")]),
    ("changed", "one file changed, rebuild+push", [("kiln", "kiln (warm cache)"), ("kiln-cold", "kiln cold, same layers"),
                                                   ("kiln-nodocs", "kiln --sbom none --provenance none (warm)"),
                                                   ("kiln-cold-nodocs", "kiln cold, --sbom none --provenance none")]),
    ("fresh", "fresh runner (empty cache), --version auto",
     [("tar-sha256", "tar + openssl dgst -sha256"), ("kiln-unchanged", "kiln, unchanged"),
      ("kiln-changed", "kiln, one file changed"), ("kiln-cold", "kiln cold, same layers"),
      ("kiln-auto", "kiln --version auto (warm, new version)"), ("kiln-tag", "kiln --tag NEW (warm)")]),
]

def load(k, sc):
    p = f"{results}/{k}.{sc}.json"
    if not os.path.exists(p):
        return {}
    out = {}
    for r in json.load(open(p))["results"]:
        name = r["command"]
        rss = [int(l) for l in open(f"{rss_dir}/{k}.{sc}.{name}") if l.strip().isdigit()] \
            if os.path.exists(f"{rss_dir}/{k}.{sc}.{name}") else []
        out[name] = {"wall": r["median"], "cpu": r["user"] + r["system"], "rss": max(rss) / 1024 if rss else None}
    return out

def fmt_t(s):
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"

data = {k: {sc: load(k, sc) for sc, _, _ in STEPS} for k in fixtures}

def ratio(k, sc, cmd, rsc, rcmd):
    a, b = data[k][sc].get(cmd), data[k][rsc].get(rcmd)
    return a["wall"] / b["wall"] if a and b else None

def vs(k, sc, cmd):
    """The ratio this row is judged by."""
    r = lambda *a: ratio(k, *a)
    x = None
    if sc == "build" and cmd == "kiln":
        x = r("build", "kiln", "build", "layer-igzip1"); return x and f"**{x:.2f}x** layer-igzip1"
    if sc == "build" and cmd == "umoci":
        x = r("build", "umoci", "build", "kiln"); return x and f"kiln **{x:.2f}x** faster"
    if sc == "push" and cmd == "kiln":
        x = r("push", "kiln", "push", "push-igzip1"); return x and f"**{x:.2f}x** igzip+curl"
    if sc == "push" and cmd in ("umoci+skopeo", "buildah"):
        x = r("push", cmd, "push", "kiln"); return x and f"kiln **{x:.2f}x** faster"
    if sc == "changed" and cmd == "kiln-nodocs":
        x = r("changed", "kiln-nodocs", "changed", "kiln-cold-nodocs"); return x and f"**{100 * x:.1f}%** of kiln cold (no documents)"
    if sc in ("build", "push", "unchanged") and cmd == "kiln-nodocs":
        x = r(sc, "kiln", sc, "kiln-nodocs"); return x and f"SBOM+provenance: **{100 * (x - 1):+.1f}%**"
    if sc == "unchanged" and cmd == "kiln":
        x = r("unchanged", "kiln", "push", "kiln"); return x and f"**{100 * x:.1f}%** of kiln cold"
    if sc == "unchanged" and cmd == "umoci+skopeo":
        x = r("unchanged", "umoci+skopeo", "unchanged", "kiln"); return x and f"kiln **{x:.1f}x** faster"
    if sc == "changed" and cmd == "kiln":
        x = r("changed", "kiln", "changed", "kiln-cold"); return x and f"**{100 * x:.1f}%** of kiln cold"
    if sc == "fresh" and cmd == "kiln-unchanged":
        x = r("fresh", cmd, "fresh", "tar-sha256"); return x and f"**{x:.2f}x** tar+sha256"
    if sc == "fresh" and cmd == "kiln-changed":
        x = r("fresh", cmd, "fresh", "kiln-cold"); return x and f"**{100 * x:.1f}%** of kiln cold"
    if sc == "fresh" and cmd == "kiln-auto":
        x = extra(k); return x is not None and f"**{x * 1000:+.0f} ms** vs --tag"
    return ""

def extra(k):
    """What --version auto costs over an explicit new --tag (seconds)."""
    a, b = data[k]["fresh"].get("kiln-auto"), data[k]["fresh"].get("kiln-tag")
    return a["wall"] - b["wall"] if a and b else None

for k in fixtures:
    print(f"#### `{k}`\n")
    print("| step | tool | wall (median) | CPU user+sys (mean) | peak RSS | ratio |")
    print("|---|---|--:|--:|--:|---|")
    for sc, label, cmds in STEPS:
        first = True
        for cmd, shown in cmds:
            m = data[k][sc].get(cmd)
            if not m:
                continue
            rss = f"{m['rss']:.0f} MiB" if m["rss"] is not None else "?"
            print(f"| {label if first else ''} | {shown} | {fmt_t(m['wall'])} | {fmt_t(m['cpu'])} | {rss} | "
                  f"{vs(k, sc, cmd) or ''} |")
            first = False
    print()
    if os.path.exists(f"{results}/{k}.sizes"):
        ks, gs = (int(x) for x in open(f"{results}/{k}.sizes").read().split())
        print(f"Layer size: kiln {ks / 2**20:.1f} MiB, igzip -1 {gs / 2**20:.1f} MiB (kiln {100 * (ks / gs - 1):+.0f}%)\n")

TARGETS = [
    ("cold build ≤ 1.0x igzip one-pass", lambda k: ratio(k, "build", "kiln", "build", "layer-igzip1"),
     lambda x: x <= 1.0, lambda x: f"{x:.2f}x"),
    ("… without SBOM/provenance (the peers write none)", lambda k: ratio(k, "build", "kiln-nodocs", "build", "layer-igzip1"),
     lambda x: x <= 1.0, lambda x: f"{x:.2f}x"),
    ("cold build+push ≤ 1.0x igzip+curl", lambda k: ratio(k, "push", "kiln", "push", "push-igzip1"),
     lambda x: x <= 1.0, lambda x: f"{x:.2f}x"),
    ("… without SBOM/provenance", lambda k: ratio(k, "push", "kiln-nodocs", "push", "push-igzip1"),
     lambda x: x <= 1.0, lambda x: f"{x:.2f}x"),
    ("cold build+push ≥ 1.6x faster than umoci+skopeo", lambda k: ratio(k, "push", "umoci+skopeo", "push", "kiln"),
     lambda x: x >= 1.6, lambda x: f"{x:.2f}x"),
    ("… without SBOM/provenance", lambda k: ratio(k, "push", "umoci+skopeo", "push", "kiln-nodocs"),
     lambda x: x >= 1.6, lambda x: f"{x:.2f}x"),
    ("unchanged rebuild+push ≥ 10x faster than umoci+skopeo's",
     lambda k: ratio(k, "unchanged", "umoci+skopeo", "unchanged", "kiln"), lambda x: x >= 10, lambda x: f"{x:.1f}x"),
    ("one-file-changed ≤ 25% of cold", lambda k: ratio(k, "changed", "kiln", "changed", "kiln-cold"),
     lambda x: x <= 0.25, lambda x: f"{100 * x:.0f}%"),
    ("… without SBOM/provenance", lambda k: ratio(k, "changed", "kiln-nodocs", "changed", "kiln-cold-nodocs"),
     lambda x: x <= 0.25, lambda x: f"{100 * x:.0f}%"),
    ("fresh runner, unchanged ≤ 1.5x tar + openssl sha256", lambda k: ratio(k, "fresh", "kiln-unchanged", "fresh", "tar-sha256"),
     lambda x: x <= 1.5, lambda x: f"{x:.2f}x"),
    ("fresh runner, one-file-changed ≤ 30% of cold", lambda k: ratio(k, "fresh", "kiln-changed", "fresh", "kiln-cold"),
     lambda x: x <= 0.30, lambda x: f"{100 * x:.0f}%"),
    ("--version auto ≤ +0.15 s over --tag", extra, lambda x: x <= 0.15, lambda x: f"{x * 1000:+.0f} ms"),
    ("SBOM + provenance ≤ +10% on cold build+push", lambda k: ratio(k, "push", "kiln", "push", "kiln-nodocs"),
     lambda x: x <= 1.10, lambda x: f"{100 * (x - 1):+.1f}%"),
    ("peak RSS < 64 MiB (kiln, every step)",
     lambda k: max((m["rss"] for sc in data[k].values() for c, m in sc.items() if c.startswith("kiln") and m["rss"]),
                   default=None), lambda x: x < 64, lambda x: f"{x:.0f} MiB"),
]
print("| target | " + " | ".join(f"`{k}`" for k in fixtures) + " |")
print("|---|" + "---|" * len(fixtures))
for name, get, ok, fmt in TARGETS:
    cells = []
    for k in fixtures:
        x = get(k)
        cells.append("–" if x is None else f"{fmt(x)} {'✅ met' if ok(x) else '❌ not met'}")
    print(f"| {name} | " + " | ".join(cells) + " |")
