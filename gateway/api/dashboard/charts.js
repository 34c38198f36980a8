// Charts drawn as inline SVG, sized in the container's own pixels (so their text stays
// readable on a phone); colours come from style.css through each series' class.

import { h, s } from "./dom.js";

/** A sparkline of `series` ([{values, className, name}]) sharing one scale, `width`×`height` px. */
export function sparkline(series, width = 160, height = 36) {
  const longest = Math.max(0, ...series.map((line) => line.values.length));
  const top = Math.max(1, ...series.flatMap((line) => line.values));
  const svg = s("svg", {
    class: "sparkline",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none", // stretched to its box (style.css); the strokes do not scale
    role: "img",
    "aria-label": series.map((line) => `${line.name}: ${line.values.join(", ")}`).join("; "),
  });
  svg.append(s("line", { class: "axis", x1: 0, x2: width, y1: height - 1, y2: height - 1 }));
  for (const line of series) {
    const step = width / Math.max(1, longest - 1);
    const points = line.values.map((value, i) => {
      const x = (i + longest - line.values.length) * step;
      return `${x.toFixed(1)},${(height - 2 - (value / top) * (height - 6)).toFixed(1)}`;
    });
    if (points.length === 1) points.push(`${width},${points[0].split(",")[1]}`);
    svg.append(s("polyline", { class: `line ${line.className}`, points: points.join(" ") }));
  }
  return svg;
}

/** A line chart over time: `times` (unix seconds) and `series` ([{name, className, values}], a
 * null value leaves a gap); `format` writes the y axis' values. `width` is the container's. */
export function lineChart({ times, series, format = String, width = 600, height = 200 }) {
  const pad = { left: 56, right: 12, top: 12, bottom: 26 };
  const plotW = Math.max(60, width - pad.left - pad.right);
  const plotH = height - pad.top - pad.bottom;
  const values = series.flatMap((line) => line.values.filter((value) => value !== null));
  const top = niceCeiling(Math.max(0, ...values));
  const t0 = times[0];
  const span = Math.max(1, times[times.length - 1] - t0);
  const x = (t) => pad.left + ((t - t0) / span) * plotW;
  const y = (value) => pad.top + plotH - (value / top) * plotH;
  const svg = s("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  for (const fraction of [0, 0.5, 1]) {
    const level = top * fraction;
    svg.append(
      s("line", { class: "grid-line", x1: pad.left, x2: pad.left + plotW, y1: y(level), y2: y(level) }),
      s("text", { class: "tick", x: pad.left - 6, y: y(level) + 4, "text-anchor": "end" }, format(level)),
    );
  }
  svg.append(
    s("text", { class: "tick", x: pad.left, y: height - 6 }, clock(t0)),
    s("text", { class: "tick", x: pad.left + plotW, y: height - 6, "text-anchor": "end" }, clock(t0 + span)),
  );
  for (const line of series) {
    for (const run of runs(line.values)) {
      const points = run.map((i) => `${x(times[i]).toFixed(1)},${y(line.values[i]).toFixed(1)}`);
      if (run.length === 1) {
        const [cx, cy] = points[0].split(",");
        svg.append(s("circle", { class: `dot ${line.className}`, cx, cy, r: 3 }));
      } else {
        svg.append(s("polyline", { class: `line ${line.className}`, points: points.join(" ") }));
      }
    }
  }
  return h("figure", { class: "chart-box" }, svg, legend(series));
}

/** Horizontal bars of `items` ([{name, value, className}]), one scale; `format` labels them. */
export function barChart(items, format = String, width = 600) {
  const rowH = 28;
  const labelW = 48;
  const valueW = 72;
  const top = Math.max(0, ...items.map((item) => item.value ?? 0)) || 1;
  const height = items.length * rowH;
  const svg = s("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  items.forEach((item, i) => {
    const barW = ((item.value ?? 0) / top) * Math.max(20, width - labelW - valueW);
    const middle = i * rowH + rowH / 2;
    svg.append(
      s("text", { class: "tick", x: 0, y: middle + 4 }, item.name),
      s("rect", { class: `bar ${item.className}`, x: labelW, y: middle - 9, width: barW, height: 18, rx: 3 }),
      s("text", { class: "tick value", x: labelW + barW + 6, y: middle + 4 }, format(item.value)),
    );
  });
  return svg;
}

function legend(series) {
  return h(
    "figcaption",
    { class: "legend" },
    series.map((line) => h("span", {}, h("i", { class: `swatch ${line.className}` }), line.name)),
  );
}

/** The index runs of `values` without nulls. */
function runs(values) {
  const found = [];
  let current = [];
  values.forEach((value, i) => {
    if (value === null || value === undefined) {
      if (current.length) found.push(current);
      current = [];
    } else current.push(i);
  });
  if (current.length) found.push(current);
  return found;
}

/** The smallest of 1, 2, 2.5, 5 × 10^n at or above `value` (1 for 0). */
function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((step) => step * power).find((step) => step >= value);
}

function clock(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString("en-GB");
}
