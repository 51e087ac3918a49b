#!/usr/bin/env python3
# Latency over time: plots one or more latency logs of `cairn bench
# --latency-log FILE` (CSV: started_s, latency_ms, facts) as a PNG, one
# panel per log: every request as a dot at its start time, the rolling p99
# and max per second as lines, and the log's p50, p99 and max in the title.
# A stall shows as a column of slow requests; a smooth run as a flat band.
#
# usage: bench/plot_latency.py OUT.png LABEL=FILE.csv [LABEL=FILE.csv ...]
# needs matplotlib (`pip install matplotlib`; bench/stalls.sh and bench/curve.sh install it).
import csv
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_log(path):
    started, latency = [], []
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            started.append(float(row["started_s"]))
            latency.append(float(row["latency_ms"]))
    if not started:
        sys.exit(f"{path} holds no request")
    return started, latency


def quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def per_second(started, latency):
    buckets = {}
    for second, value in zip(started, latency):
        buckets.setdefault(int(second), []).append(value)
    seconds = sorted(buckets)
    return (
        seconds,
        [quantile(buckets[s], 0.99) for s in seconds],
        [max(buckets[s]) for s in seconds],
    )


def main():
    if len(sys.argv) < 3 or any("=" not in arg for arg in sys.argv[2:]):
        sys.exit(__doc__ or "usage: plot_latency.py OUT.png LABEL=FILE.csv ...")
    out = sys.argv[1]
    logs = [arg.split("=", 1) for arg in sys.argv[2:]]
    figure, axes = plt.subplots(
        len(logs), 1, figsize=(11, 3.4 * len(logs)), squeeze=False, sharex=False
    )
    for (label, path), axis in zip(logs, axes[:, 0]):
        started, latency = read_log(path)
        p50, p99, worst = quantile(latency, 0.5), quantile(latency, 0.99), max(latency)
        axis.scatter(started, latency, s=2, alpha=0.35, color="tab:blue", label="request")
        seconds, p99s, maxes = per_second(started, latency)
        axis.plot(seconds, p99s, color="tab:orange", linewidth=1.2, label="p99 per second")
        axis.plot(seconds, maxes, color="tab:red", linewidth=0.8, label="max per second")
        axis.axhline(100, color="grey", linestyle="--", linewidth=0.8, label="100 ms")
        axis.set_yscale("log")
        axis.set_ylabel("latency (ms)")
        axis.set_xlabel("seconds since start")
        axis.set_title(
            f"{label}: {len(latency):,} requests, p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            f"({p99 / p50:.1f}× p50), max {worst:.1f} ms",
            fontsize=10,
        )
        axis.legend(loc="upper right", fontsize=8)
        axis.grid(True, which="both", alpha=0.2)
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
