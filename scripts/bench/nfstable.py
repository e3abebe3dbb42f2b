#!/usr/bin/env python3
"""Print the table of scripts/bench/nfs.sh from OUTDIR/results.tsv
(server, metric, repetition, value) and OUTDIR/meta.txt.

usage: nfstable.py OUTDIR
"""
import os
import statistics
import sys

METRICS = ["seqwrite", "seqwrite-sync", "seqread", "seqread-cold", "creates"]
HEAD = ["seqwrite MB/s", "seqwrite synced per 1 MiB MB/s", "seqread MB/s", "seqread cold MB/s", "creates/s"]
NAMES = {
    "local": "local (dd, write+fsync; no NFS)",
    "ganesha": "nfs-ganesha VFS, local folder",
    "gw-dir": "gateway --dir, local folder",
    "tsumiki-fs": "ext4 on tsumiki (no NFS)*",
    "gw-tsumiki": "gateway over tsumiki*",
}
ORDER = list(NAMES)


def main():
    out = sys.argv[1]
    meta = {}
    for line in open(os.path.join(out, "meta.txt")):
        k, _, v = line.rstrip("\n").partition("=")
        meta[k] = v
    vals = {}
    bad = set()
    for line in open(os.path.join(out, "results.tsv")):
        f = line.rstrip("\n").split("\t")
        if len(f) != 4:
            continue
        if f[1] == "verify":
            bad.add(f[0])
            continue
        try:
            vals.setdefault((f[0], f[1]), []).append(float(f[3]))
        except ValueError:
            pass
    med = {k: statistics.median(v) for k, v in vals.items() if v}
    servers = [s for s in ORDER if any(k[0] == s for k in med)]

    def cell(s, m):
        v = vals.get((s, m))
        if not v:
            return "-"
        fmt = "{:.0f}" if statistics.median(v) >= 100 else "{:.1f}"
        c = fmt.format(statistics.median(v))
        if len(v) > 1:
            c += " (" + fmt.format(min(v)) + "–" + fmt.format(max(v)) + ")"
        return c

    def ratio(a, b, m):
        if (a, m) in med and (b, m) in med and med[(b, m)] > 0:
            return med[(a, m)] / med[(b, m)]
        return None

    print(f"NFSv3 bench, {meta.get('date', '?')}")
    print(f"machine: {meta.get('machine', '?')}; work folder on {meta.get('workfs', '?')}")
    print(f"load average at start {meta.get('load_start', '?')}, at end {meta.get('load_end', '?')}")
    print(f"jobs: {meta.get('size', '?')}; {meta.get('versions', '')}")
    print()
    print("| server | " + " | ".join(HEAD) + " | vs ganesha (write / read / creates) |")
    print("|---|" + "---|" * (len(HEAD) + 1))
    for s in servers:
        r = "-"
        if s != "ganesha" and any(k == ("ganesha", m) for k in med for m in METRICS):
            parts = [ratio(s, "ganesha", m) for m in ("seqwrite", "seqread", "creates")]
            r = " / ".join("-" if p is None else f"{p:.2f}" for p in parts)
        name = NAMES[s] + (" (DATA MISMATCH)" if s in bad else "")
        print(f"| {name} | " + " | ".join(cell(s, m) for m in METRICS) + f" | {r} |")
    print()
    print("Median of the repetitions (min–max). seqwrite: nfs-cp of one file, 1 MiB UNSTABLE WRITEs at queue depth 1 and")
    print("the COMMIT libnfs sends when it closes the file (data on disk). seqread: nfs-cat right after (server page")
    print("cache); cold: after the file's pages were dropped on the server (tsumiki: also the nbdfuse file's; the OSDs'")
    print("own caches stay warm). creates: MKDIR + per file CREATE and one 4 KiB FILE_SYNC WRITE, queue depth 1. The rows")
    print("without NFS use dd + fsync and write+fsync per file on the same filesystem; their 'synced per 1 MiB' column is")
    print("dd oflag=dsync, what the gateway's default (every WRITE synced before its reply, unstable_writes: false) costs")
    print("without NFS.")
    print("* tsumiki rows: `tsumiki up` (3 OSDs, size 3) -> NBD -> nbdfuse -> loop device -> ext4. This kernel has no nbd")
    print("  module, so the real `nfs serve --image` path (kernel NBD client) cannot run here; FUSE and loop add their own")
    print("  overhead (and a second page cache), so these rows are a lower bound for it.")

    rows = [("gateway --dir / ganesha", "gw-dir", "ganesha"),
            ("gateway --dir / local", "gw-dir", "local"),
            ("gateway over tsumiki / ganesha", "gw-tsumiki", "ganesha"),
            ("gateway over tsumiki / gateway --dir (what the storage costs)", "gw-tsumiki", "gw-dir"),
            ("gateway over tsumiki / ext4 on tsumiki (what NFS costs there)", "gw-tsumiki", "tsumiki-fs")]
    rows = [r for r in rows if any(ratio(r[1], r[2], m) is not None for m in METRICS)]
    if rows:
        print()
        print("| ratio | " + " | ".join(HEAD) + " |")
        print("|---|" + "---|" * len(HEAD))
        for label, a, b in rows:
            print(f"| {label} | " + " | ".join("-" if ratio(a, b, m) is None else f"{ratio(a, b, m):.2f}"
                                               for m in METRICS) + " |")

    print()
    checks = []
    for m, label in (("seqwrite", "write"), ("seqread", "read")):
        r = ratio("gw-dir", "ganesha", m)
        if r is not None:
            checks.append(f"- gateway --dir {label} >= 0.5x ganesha: {r:.3f}x, {'met' if r >= 0.5 else 'MISSED'}")
    for m, base, label in (("seqwrite", "seqwrite-sync", "write (every WRITE synced, the default)"),
                           ("seqread-cold", "seqread-cold", "cold read")):
        if ("gw-tsumiki", m) in med and ("tsumiki-fs", base) in med and med[("tsumiki-fs", base)] > 0:
            r = med[("gw-tsumiki", m)] / med[("tsumiki-fs", base)]
            checks.append(f"- gateway over tsumiki {label} vs the same ext4 without NFS doing the same: {r:.3f}x "
                          f"({'limited by the block layer' if r >= 0.8 else 'the gateway costs more than 20%'})")
    if checks:
        print("Targets (gateway over a local folder >= half of ganesha both ways; over tsumiki limited by the block layer):")
        print("\n".join(checks))
    elif "ganesha" not in servers:
        print("(no ganesha figures in this run: the targets are not evaluated against it)")
    hwm = os.path.join(out, "tsumiki-hwm-mib")
    if os.path.exists(hwm) and open(hwm).read().strip():
        print(f"Peak RSS of `tsumiki up` (mon, 3 OSDs, NBD server): {float(open(hwm).read()):.0f} MiB.")
    if bad:
        print(f"DATA MISMATCH on: {', '.join(sorted(bad))} (see notes.txt)")


main()
