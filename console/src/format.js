// How the console writes numbers, times and sizes.

const integer = new Intl.NumberFormat("en");

/** 1234567 → "1,234,567". */
export const count = (value) => (value === undefined || value === null ? "–" : integer.format(value));

/** A rate per second, with one decimal below ten. */
export const rate = (value) => (value < 10 ? value.toFixed(1) : integer.format(Math.round(value)));

/** Bytes in binary units. */
export function bytes(value) {
  if (value === undefined || value === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** A duration in milliseconds, in the largest unit that keeps it readable. */
export function duration(ms) {
  if (ms === undefined || ms === null) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}

/** A time in milliseconds since the epoch, in the browser's time zone. */
export function time(ms) {
  if (!ms) return "–";
  return new Date(ms).toLocaleString(undefined, { hour12: false });
}

/** How long ago, from now. */
export const ago = (ms) => (ms ? `${duration(Date.now() - ms)} ago` : "–");

/** The first characters of a hash, for tables; the whole hash is its title. */
export const short = (hash) => `${hash.slice(0, 12)}…`;

/** JSON laid out for reading. */
export const pretty = (value) => JSON.stringify(value, null, 2);
