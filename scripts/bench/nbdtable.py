#!/usr/bin/env python3
"""Print the table of scripts/bench/nbd.sh: tsumiki, the sequential-write
floor, nbdkit and Ceph RBD on the anchors' fio job set, with CPU per I/O
and issue 3's targets.

usage: nbdtable.py OUTDIR [CEPH_SUMMARY_TSV]
"""
import json
import os
import sys

JOBS = ["randwrite-4k-qd32", "randread-4k-qd32", "syncwrite-4k-qd1", "seqwrite-1M-qd16", "seqread-1M-qd16"]
CEPH_NAME = {"randwrite-4k-qd32": "randwrite-4k-qd32", "randread-4k-qd32": "randread-4k-qd32",
             "syncwrite-4k-qd1": "randwrite-4k-qd1", "seqwrite-1M-qd16": "seqwrite-1m-qd16",
             "seqread-1M-qd16": "seqread-1m-qd16"}
# (metric, factor, direction): tsumiki/ceph must be >= factor ("ge") or <= ("le")
TARGETS = {"randwrite-4k-qd32": ("iops", 3.0, "ge"), "randread-4k-qd32": ("iops", 2.0, "ge"),
           "syncwrite-4k-qd1": ("p50", 1 / 3, "le"), "seqwrite-1M-qd16": ("mbps", 1.5, "ge"),
           "seqread-1M-qd16": ("mbps", 1.0, "ge")}


def pct(lat, p):
    for k, v in (lat.get("percentile") or {}).items():
        if abs(float(k) - p) < 1e-6:
            return v / 1e6  # ns -> ms
    return float("nan")


def load_fio(path):
    s = open(path, encoding="utf-8", errors="replace").read()
    return json.loads(s[s.index("{"):])


def disk_samples(out):
    """(epoch ms, bytes written) samples of the device, from diskwatch.sh."""
    path = os.path.join(out, "diskstats.tsv")
    if not os.path.exists(path):
        return []
    samples = []
    for line in open(path):
        f = line.split()
        if len(f) == 2:
            samples.append((int(f[0]), int(f[1]) * 512))
    return samples


def disk_bytes(samples, t0, t1):
    """Bytes written to the device between t0 and t1 (ms), interpolated."""
    def at(t):
        for (ta, ba), (tb, bb) in zip(samples, samples[1:]):
            if ta <= t <= tb:
                return ba + (bb - ba) * (t - ta) / max(tb - ta, 1)
        return None
    a, b = at(t0), at(t1)
    return None if a is None or b is None else b - a


def amplification(doc, samples):
    """Device bytes written per byte the client wrote during the job's
    measured window (after ramp), or None without samples or writes."""
    j = doc["jobs"][0]
    wrote = j["write"]["io_bytes"]
    end, ms = doc.get("timestamp_ms"), j.get("job_runtime")
    if not samples or not wrote or not end or not ms:
        return None
    dev = disk_bytes(samples, end - ms, end)
    return None if dev is None else dev / wrote


def ceiling_mbps(out):
    path = os.path.join(out, "device-ceiling.json")
    try:
        return load_fio(path)["jobs"][0]["write"]["bw_bytes"] / 1e6
    except (OSError, ValueError, KeyError, IndexError):
        return None


def fio_result(path, samples=()):
    doc = load_fio(path)
    j = doc["jobs"][0]
    side = max(("read", "write"), key=lambda k: j[k]["total_ios"])
    r = j[side]
    res = {"iops": r["iops"], "mbps": r["bw_bytes"] / 1e6, "p50": pct(r["lat_ns"], 50.0), "p99": pct(r["lat_ns"], 99.0)}
    amp = amplification(doc, samples) if side == "write" else None
    if amp is not None:
        res["amp"] = amp
    sync = j.get("sync") or {}
    if sync.get("total_ios"):  # write + FLUSH cycle
        res["p50"] += pct(sync["lat_ns"], 50.0)
        res["p99"] += pct(sync["lat_ns"], 99.0)
    return res


def seq_bound(t, ceph, factor, ceiling):
    """The sequential-write MB/s the device allows each system at its
    measured amplification, against what the target needs."""
    need = factor * ceph["mbps"]
    parts = [f"the target needs {need:.0f} MB/s; the device ({ceiling:.0f} MB/s) allows"]
    for name, r in (("tsumiki", t), ("Ceph", ceph)):
        if r.get("amp"):
            parts.append(f"{name} {ceiling / r['amp']:.0f} MB/s at {r['amp']:.1f} B/B")
    parts.append(f"and {need:.0f} MB/s needs at most {ceiling / need:.1f} B/B")
    return " ".join(parts[:1]) + " " + ", ".join(parts[1:-1]) + "; " + parts[-1] + "."


def own_rows(out, server, samples):
    """Rows of a system this script runs itself (tsumiki, the floor): fio's
    SERVER-JOB.json, with CPU per I/O from SERVER-cpu.tsv."""
    cpu = {}
    cpu_path = os.path.join(out, f"{server}-cpu.tsv")
    if os.path.exists(cpu_path):
        for line in open(cpu_path):
            job, c, wall = line.split()
            cpu[job] = (float(c), float(wall))
    rows = {}
    for job in JOBS:
        p = os.path.join(out, f"{server}-{job}.json")
        if os.path.exists(p):
            r = fio_result(p, samples)
            if job in cpu and r["iops"] > 0:
                c, wall = cpu[job]
                r["cpu_ms"] = c * 1000 / (r["iops"] * wall)
            rows[(server, job)] = r
    return rows


def floor_verdict(t, ceph, factor, floor):
    """The sequential-write target and both systems against the floor."""
    need = factor * ceph["mbps"]
    return (f"against the floor ({floor['mbps']:.0f} MB/s: tsumiki's data path with no storage logic) the target "
            f"is {100 * need / floor['mbps']:.0f} %, tsumiki {100 * t['mbps'] / floor['mbps']:.0f} % and Ceph "
            f"{100 * ceph['mbps'] / floor['mbps']:.0f} % of it.")


def main():
    out = sys.argv[1]
    ceph_sum = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else ""
    rows = {}
    samples = disk_samples(out)
    for server in ("tsumiki", "floor"):
        rows.update(own_rows(out, server, samples))
    nbdkit = os.path.join(out, "nbdkit.txt")
    if os.path.exists(nbdkit):
        for line in open(nbdkit):
            f = line.split()
            if len(f) == 6 and not line.startswith("#") and f[2] != "ERR":
                rows[(f[0], f[1])] = {"iops": float(f[2]), "mbps": float(f[3]), "mean": float(f[4]) / 1000,
                                      "p99": float(f[5]) / 1000}
    if ceph_sum and os.path.exists(ceph_sum):
        lines = open(ceph_sum).read().split("\n")
        head = lines[0].split("\t")
        by = {}
        for line in lines[1:]:
            if line.strip():
                d = dict(zip(head, line.split("\t")))
                by[d["job"]] = d
        for job, cj in CEPH_NAME.items():
            d = by.get(cj)
            if d:
                iops, wall, osd = float(d["iops"]), float(d["wall_s"]), float(d["osd_cpu_s"])
                rows[("ceph-rbd", job)] = {"iops": iops, "mbps": float(d["bw_MBps"]), "p50": float(d["lat_p50_us"]) / 1000,
                                           "p99": float(d["lat_p99_us"]) / 1000,
                                           "cpu_ms": osd * 1000 / (iops * wall) if iops > 0 else float("nan")}
                raw = os.path.join(os.path.dirname(ceph_sum), f"{cj}.json")
                if os.path.exists(raw):
                    amp = amplification(load_fio(raw), samples)
                    if amp is not None:
                        rows[("ceph-rbd", job)]["amp"] = amp
    ceiling = ceiling_mbps(out)
    servers = [s for s in ("tsumiki", "floor", "nbdkit-memory", "nbdkit-file", "ceph-rbd") if any(k[0] == s for k in rows)]
    print("| job | server | IOPS | MB/s | p50 ms | p99 ms | CPU ms/IO | disk B/B | vs Ceph |")
    print("|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for job in JOBS:
        ceph = rows.get(("ceph-rbd", job))
        for s in servers:
            r = rows.get((s, job))
            if not r:
                continue
            p50 = f"{r['p50']:.2f}" if "p50" in r else f"{r['mean']:.2f} (mean)"
            cpu_ms = f"{r['cpu_ms']:.3f}" if "cpu_ms" in r else "-"
            ratio = "-"
            if ceph and s != "ceph-rbd":
                metric = TARGETS[job][0]
                if ceph.get(metric) and metric in r:
                    ratio = f"{r[metric] / ceph[metric]:.2f}x {metric}"
            amp = f"{r['amp']:.1f}" if "amp" in r else "-"
            print(f"| {job} | {s} | {r['iops']:.0f} | {r['mbps']:.1f} | {p50} | {r['p99']:.2f} | {cpu_ms} | {amp} | {ratio} |")
        t = rows.get(("tsumiki", job))
        if t and ceph:
            metric, factor, way = TARGETS[job]
            got = t[metric] / ceph[metric]
            ok = got >= factor if way == "ge" else got <= factor
            sign = ">=" if way == "ge" else "<="
            verdicts.append(f"- {job}: tsumiki/Ceph {metric} = {got:.2f} (target {sign} {factor:.2f}): {'met' if ok else 'MISSED'}")
            if job == "seqwrite-1M-qd16" and ceiling:
                verdicts.append("  " + seq_bound(t, ceph, factor, ceiling))
            floor = rows.get(("floor", job))
            if job == "seqwrite-1M-qd16" and floor and floor["mbps"] > 0:
                verdicts.append("  " + floor_verdict(t, ceph, factor, floor))
    print()
    print("CPU ms/IO: tsumiki = all of `tsumiki up` (mon, 3 OSDs and the NBD gateway) per I/O; Ceph = its 3 OSDs per I/O")
    print("(librbd runs inside fio and is not counted). Latencies are fio's total latency; for syncwrite-4k-qd1 the")
    print("write+FLUSH cycle (Ceph: 4k randwrite qd1 with rbd_cache=false, clat).")
    print("disk B/B: bytes written to the data device per byte the client wrote, in the job's measured window")
    print("(every process's writes to that device count; replication, logs and metadata included).")
    if any(k[0] == "floor" for k in rows):
        print("floor: scripts/bench/seqfloor, NBD gateway -> primary -> two replicas over loopback TCP, O_DIRECT writes in")
        print("place (prefilled) and group-committed fdatasync, nothing else: no system with that path (tsumiki's) does better")
        print("here; Ceph's path has one hop fewer (librbd runs inside fio).")
    if ceiling:
        print(f"Device ceiling: {ceiling:.0f} MB/s written by three direct 1 MiB writers (qd16 each), measured in this run.")
    hwm = os.path.join(out, "tsumiki-hwm-mib")
    if os.path.exists(hwm):
        print(f"Peak RSS of the whole `tsumiki up` process (3 OSDs, mon, gateway): {float(open(hwm).read()):.0f} MiB.")
    if verdicts:
        print()
        print("Targets (issue 3, proof 3):")
        print("\n".join(verdicts))
    elif not ceph_sum:
        print("\n(no Ceph figures in this run: targets not evaluated)")


main()
