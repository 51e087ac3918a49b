// Reading the Prometheus text of `/metrics`: the Server page shows the
// same numbers a scraper sees, turned into rates between two readings.

/** Parses the text format into samples `{name, labels, value}`. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the one sample named `name` (0 if absent). */
export function value(samples, name) {
  return samples.find((sample) => sample.name === name)?.value ?? 0;
}

/**
 * Latency by route from a histogram: for each label set (without `le`),
 * the request count and the p50 and p99 upper bounds in seconds, read off
 * the cumulative buckets.
 */
export function latencyByRoute(samples, name) {
  const series = new Map();
  for (const sample of samples) {
    if (sample.name !== `${name}_bucket`) continue;
    const { le, ...labels } = sample.labels;
    const key = JSON.stringify(labels);
    if (!series.has(key)) series.set(key, { labels, buckets: [] });
    series.get(key).buckets.push([le === "+Inf" ? Infinity : Number(le), sample.value]);
  }
  return [...series.values()].map(({ labels, buckets }) => {
    buckets.sort((a, b) => a[0] - b[0]);
    const total = buckets.at(-1)?.[1] ?? 0;
    const quantile = (q) => buckets.find(([, cumulative]) => cumulative >= q * total)?.[0] ?? Infinity;
    return { labels, count: total, p50: quantile(0.5), p99: quantile(0.99) };
  }).filter((route) => route.count > 0).sort((a, b) => b.count - a.count);
}
