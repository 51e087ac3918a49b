#!/usr/bin/env python3
# Issue 18's targets against one run of bench/all.sh: reads the run's result
# file (the key=value lines of every bench script) and prints a Markdown
# table — each target, what was measured beside which peer, the ratio, and
# whether it was met. A value the run did not produce shows as "—" and the
# target as not measured, never as met.
#
# usage: bench/targets.py RESULTS.txt
import math
import sys


def parse(path):
    """Every line as (tag, fields): tag is the words before the first
    key=value, fields the key=value pairs; one-per-line keys (consume-peers)
    gather under the tag ""."""
    rows = []
    with open(path) as file:
        for line in file:
            words = line.split()
            tag, fields = [], {}
            for word in words:
                if "=" in word:
                    key, value = word.split("=", 1)
                    fields.setdefault(key, value)
                elif not fields:
                    tag.append(word)
            if fields:
                rows.append((" ".join(tag), fields))
    return rows


class Results:
    def __init__(self, rows):
        self.rows = rows

    def value(self, tag, key, **match):
        """`key` of the last row with this tag that has it and whose fields
        include `match`; the tag "" holds lines that start with a key, such
        as bench/consume-peers.sh's one-per-line keys and peers.sh's rows."""
        for row_tag, fields in reversed(self.rows):
            if row_tag != tag or key not in fields:
                continue
            if all(fields.get(k) == v for k, v in match.items()):
                try:
                    return float(fields[key])
                except ValueError:
                    return math.nan
        return math.nan


def fmt(value, unit=""):
    if value is None or math.isnan(value):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}{unit}"
    return f"{value:.3g}{unit}"


def ratio(a, b):
    if a is None or b is None or math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b


def verdict(ok):
    if ok is None:
        return "not measured"
    if ok == "measured":
        return "measured"
    return "**yes**" if ok else "**no**"


def check(value, test):
    return None if value is None or math.isnan(value) else test(value)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: targets.py RESULTS.txt")
    r = Results(parse(sys.argv[1]))
    lines = ["| Target | Measured (same run) | Ratio | Met |", "|---|---|---|---|"]

    def add(target, measured, shown_ratio, ok):
        lines.append(f"| {target} | {measured} | {shown_ratio} | {verdict(ok)} |")

    # 1. No stalls.
    ingested = r.value("", "facts", bench="stalls")
    for load in ("4x1000", "64x1"):
        p50 = r.value("stalls after " + load, "p50_ms")
        p99 = r.value("stalls after " + load, "p99_ms")
        high = r.value("stalls after " + load, "max_ms")
        spread = ratio(p99, p50)
        ok = None if math.isnan(spread) or math.isnan(high) else (spread <= 5 and high <= 100)
        add(f"1. no stalls, {load} (ingest of {fmt(ingested)} facts): p99 ≤ 5 × p50, max ≤ 100 ms",
            f"p50 {fmt(p50)} ms, p99 {fmt(p99)} ms, max {fmt(high)} ms", f"p99/p50 {fmt(spread)}×", ok)

    # 2. Bulk ingest against COPY.
    embedded = r.value("cairn", "facts_per_s", scenario="embedded_4x1000")
    http = r.value("cairn", "facts_per_s", scenario="http_4x1000")
    copy = r.value("summary ingest", "direct_copy_facts_per_s")
    add("2. embedded ingest ≥ 2 × PostgreSQL COPY and ≥ 300k facts/s",
        f"{fmt(embedded)} facts/s; COPY {fmt(copy)} rows/s", f"{fmt(ratio(embedded, copy))}×",
        check(ratio(embedded, copy), lambda x: x >= 2 and embedded >= 300_000))
    add("2. HTTP ingest, 4 × 1,000-fact batches ≥ 300k facts/s",
        f"{fmt(http)} facts/s", f"{fmt(ratio(http, copy))}× COPY", check(http, lambda x: x >= 300_000))

    # 3. Single-fact latency against pgbench -c 1.
    p50 = r.value("cairn", "p50_ms", scenario="http_1x1")
    p99 = r.value("cairn", "p99_ms", scenario="http_1x1")
    pg = r.value("", "p50_ms", peer="postgres", clients="1")
    add("3. one client: p50 ≤ PostgreSQL's idempotent insert p50 (pgbench -c 1), p99 ≤ 3 × p50",
        f"p50 {fmt(p50)} ms, p99 {fmt(p99)} ms; PostgreSQL p50 {fmt(pg)} ms",
        f"p50 {fmt(ratio(p50, pg))}×, p99/p50 {fmt(ratio(p99, p50))}×",
        check(ratio(p50, pg), lambda x: x <= 1 and ratio(p99, p50) <= 3))

    # 4. Durable consumption against the brokers and the PostgreSQL queue.
    for consumers in ("1", "4"):
        cairn = r.value("cairn", "messages_per_s", scenario=f"consume_{consumers}")
        cycle = r.value("cairn", "cycle_max_ms", scenario=f"consume_{consumers}")
        peers = {
            "RabbitMQ quorum": r.value("", f"rabbitmq_consume_{consumers}"),
            "NATS JetStream (sync always)": r.value("", f"nats_consume_{consumers}"),
            "PostgreSQL queue (pgbench)": r.value("", f"postgres_pgbench_consume_{consumers}"),
        }
        for name, rate in peers.items():
            shown = ratio(cairn, rate)
            add(f"4. consume, {consumers} consumer(s) ≥ 2 × {name}",
                f"{fmt(cairn)} msg/s; {name} {fmt(rate)} msg/s", f"{fmt(shown)}×", check(shown, lambda x: x >= 2))
        add(f"4. consume, {consumers} consumer(s): no cycle over 100 ms", f"max cycle {fmt(cycle)} ms", "",
            check(cycle, lambda x: x <= 100))

    # 5. Reads on the 10 M store.
    gets = r.value("scale read", "requests_per_s")
    successors = r.value("scale successors", "p99_ms")
    add("5. GET by hash, 10 M facts, 32 connections ≥ 50,000/s", f"{fmt(gets)}/s", f"{fmt(ratio(gets, 50_000))}× target",
        check(gets, lambda x: x >= 50_000))
    add("5. successors of 1,000 facts p99 ≤ 5 ms", f"p99 {fmt(successors)} ms", "", check(successors, lambda x: x <= 5))

    # 6. Memory and restart.
    ingest_rss = r.value("scale", "peak_rss_mib")
    backlog_rss = r.value("cairn", "peak_rss_mib", scenario="backlog_rss")
    restart = r.value("scale", "restart_after_sigterm_ms")
    restart_kill = r.value("scale", "restart_after_kill9_ms")
    add("6. 10 M-fact ingest peak RSS ≤ 200 MiB", f"{fmt(ingest_rss)} MiB", "", check(ingest_rss, lambda x: x <= 200))
    add("6. 1 M-message backlog peak RSS ≤ 200 MiB", f"{fmt(backlog_rss)} MiB", "", check(backlog_rss, lambda x: x <= 200))
    add("6. restart to ready at 10 M facts ≤ 1 s", f"{fmt(restart)} ms (after kill -9: {fmt(restart_kill)} ms)", "",
        check(restart, lambda x: x <= 1000 and (math.isnan(restart_kill) or restart_kill <= 1000)))

    # 7. PostgreSQL backend.
    ingest_ratio = r.value("summary ingest", "ingest_ratio_4_clients")
    single_ratio = r.value("summary single", "cairn_vs_direct_p50")
    add("7. PostgreSQL backend: batched ingest ≥ 0.7 × direct inserts", "bench/postgres.sh summary",
        f"{fmt(ingest_ratio)}×", check(ingest_ratio, lambda x: x >= 0.7))
    add("7. PostgreSQL backend: single-fact p50 ≤ 1.5 × a direct insert", "bench/postgres.sh summary",
        f"{fmt(single_ratio)}×", check(single_ratio, lambda x: x <= 1.5))

    # 8. Scaling curve.
    curve = [fields for tag, fields in r.rows if tag == "curve"]
    add("8. scaling curve (clients 1–256, store 1 M / 10 M / 50 M)", f"{len(curve)} points, see the PNG", "",
        "measured" if curve else None)

    print("\n".join(lines))


if __name__ == "__main__":
    main()
