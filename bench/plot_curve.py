#!/usr/bin/env python3
# Scaling curve as a PNG (issue 18, target 8): reads the `curve …` lines of
# bench/curve.sh and draws three panels — throughput against clients (writes
# of one fact, consumption), write latency against clients, and throughput,
# peak RSS against the store's size — so how cost grows with the work shows
# at a glance.
#
# usage: bench/plot_curve.py OUT.png TABLE.txt
# needs matplotlib (`pip install matplotlib`; bench/curve.sh installs it).
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def read_rows(path):
    by_clients, by_size = [], []
    with open(path) as file:
        for line in file:
            words = line.split()
            if not words or words[0] != "curve":
                continue
            row = dict(word.split("=", 1) for word in words[1:] if "=" in word)
            if "clients" in row:
                by_clients.append(row)
            elif "store_facts" in row:
                by_size.append(row)
    if not by_clients and not by_size:
        sys.exit(f"{path} holds no curve line")
    return by_clients, by_size


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_curve.py OUT.png TABLE.txt")
    out, table = sys.argv[1], sys.argv[2]
    by_clients, by_size = read_rows(table)
    figure, (throughput, latency, size) = plt.subplots(1, 3, figsize=(16, 4.8))

    clients = [number(row["clients"]) for row in by_clients]
    throughput.plot(clients, [number(r.get("write_facts_per_s")) for r in by_clients], "o-", label="write, 1 fact per request")
    throughput.plot(clients, [number(r.get("consume_messages_per_s")) for r in by_clients], "s-", label="consume, pull 100 + ack")
    throughput.set(xscale="log", xlabel="clients", ylabel="per second", title="Throughput against clients")
    for panel in (throughput, latency):
        panel.set_xticks(clients, [f"{c:.0f}" for c in clients])
        panel.minorticks_off()
    throughput.legend()
    throughput.grid(True, which="both", alpha=0.3)

    latency.plot(clients, [number(r.get("write_p50_ms")) for r in by_clients], "o-", label="write p50")
    latency.plot(clients, [number(r.get("write_p99_ms")) for r in by_clients], "o--", label="write p99")
    latency.plot(clients, [number(r.get("consume_cycle_p99_ms")) for r in by_clients], "s--", label="consume cycle p99")
    latency.set(xscale="log", yscale="log", xlabel="clients", ylabel="ms", title="Latency against clients")
    latency.legend()
    latency.grid(True, which="both", alpha=0.3)

    facts = [number(row["store_facts"]) for row in by_size]
    size.plot(facts, [number(r.get("ingest_facts_per_s")) for r in by_size], "o-", label="ingest 4×1000 (facts/s)")
    size.plot(facts, [number(r.get("write64_facts_per_s")) for r in by_size], "s-", label="write 64×1 (facts/s)")
    size.plot(facts, [number(r.get("get32_per_s")) for r in by_size], "^-", label="GET by hash, 32 conns (/s)")
    size.set(xscale="log", xlabel="facts stored", ylabel="per second", title="Throughput and memory against store size")
    size.grid(True, which="both", alpha=0.3)
    memory = size.twinx()
    memory.plot(facts, [number(r.get("peak_rss_mib")) for r in by_size], "k:", marker="x", label="peak RSS (MiB)")
    memory.set_ylabel("MiB")
    lines = size.get_legend_handles_labels()
    more = memory.get_legend_handles_labels()
    size.legend(lines[0] + more[0], lines[1] + more[1], fontsize="small")

    figure.tight_layout()
    figure.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
