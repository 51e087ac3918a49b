// Live charts: a few series over the last minutes, drawn by uPlot (a small,
// fast canvas chart library), one point per reading.
import uPlot from "uplot";

const POINTS_MAX = 180;
// The time axis spans at least a minute, so that a chart with one reading
// does not stretch it over years.
const WINDOW_S_MIN = 60;
const COLOURS = ["#2f6fb0", "#c0392b", "#1e7a3b", "#8a5a00", "#7b3fa0"];

/** A chart of `labels.length` series that grows as readings are pushed. */
export class LiveChart {
  constructor(title, labels, { height = 160 } = {}) {
    this.element = document.createElement("div");
    this.element.className = "chart";
    this.element.setAttribute("role", "img");
    this.element.setAttribute("aria-label", title);
    this.data = [[], ...labels.map(() => [])];
    this.plot = new uPlot({
      width: 320,
      height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: (_u, min, max) => [Math.min(min, max - WINDOW_S_MIN), max] }, y: { range: (_u, min, max) => [Math.min(0, min), Math.max(1, max * 1.1)] } },
      axes: [{ stroke: "currentColor", grid: { stroke: "rgba(128,128,128,.2)" } },
        { stroke: "currentColor", grid: { stroke: "rgba(128,128,128,.2)" }, size: 55 }],
      series: [{}, ...labels.map((label, index) => ({ label, stroke: COLOURS[index % COLOURS.length], width: 2 }))],
    }, this.data, this.element);
    this.resizer = new ResizeObserver(() => {
      const width = this.element.clientWidth;
      if (width > 0) this.plot.setSize({ width, height });
    });
    this.resizer.observe(this.element);
  }

  /** Adds one reading (one value per series) at the current time. */
  push(values) {
    this.data[0].push(Date.now() / 1000);
    values.forEach((value, index) => this.data[index + 1].push(value));
    if (this.data[0].length > POINTS_MAX) for (const series of this.data) series.shift();
    this.plot.setData(this.data);
  }
}
