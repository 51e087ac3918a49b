// Services (docs/api-v1.md "Service boundaries"): the declared services,
// the flows the server observed, and `GET /v1/boundaries` drawn as a flow
// map — writers on the left, fact types in the middle, consumers on the
// right, as SVG boxes and arrows built node by node (no library, no
// markup) — with the same data, and the violations, as tables.
import { get, may } from "../api.js";
import { h, problem, replace, section } from "../dom.js";
import { time } from "../format.js";
import { every, page } from "../router.js";
import { factLink } from "./facts.js";
import { clipped, localPager } from "./collaboration-log.js";
import "./system.css";

const SVG = "http://www.w3.org/2000/svg";
/** Edges the map draws at most; the tables hold every one. */
const MAP_EDGES_MAX = 300;
const BOX_HEIGHT_PX = 26;
const BOX_GAP_PX = 10;
const LABEL_CHARS_MAX = 36;
const CHAR_WIDTH_PX = 7.4;
const COLUMN_GAP_PX = 90;

page("/ui/services", (main, _params, { signal, me }) => {
  main.append(h("h1", {}, "Services"));
  if (!may(me.permissions, "admin")) {
    main.append(section("Services", h("p", { class: "muted" }, "Service declarations and observed flows need the admin permission.")));
    return;
  }
  const message = h("div");
  const about = h("p", { class: "muted" });
  const map = h("div", { class: "flow-map", id: "flow-map" });
  const services = localPager(["Name", "Identity", "Owns", "Consumes", "Requests", "Answers", "Description", "Registered", "Fact"],
    { perPage: 25, id: "services", empty: "No service declared." });
  const violations = localPager(["Rule", "Message", "Type", "Service", "Identity"], { perPage: 25, id: "violations", empty: "No violations." });
  const edges = localPager(["From", "Type", "To", "Kind", "Declared", "Seen"], { perPage: 50, id: "edges", empty: "No flows between services." });
  const flows = localPager(["Identity", "Service", "Kind", "Type", "First seen", "Last seen"], { perPage: 50, id: "flows", empty: "No flows observed." });
  main.append(message,
    section("Flow map", about, legend(), map),
    section("Violations", violations.element),
    section("Declared services", services.element),
    section("Edges of the map", edges.element),
    section("Observed flows", flows.element));
  let drawn = "";
  every(5000, signal, async () => {
    const answer = await get("/v1/boundaries", {}, { signal });
    replace(message);
    replace(about, answer.observing
      ? `Observing which identity writes and consumes which type; flows count when seen in the last ${Math.round(answer.unseen_for_ms / 86_400_000)} days.`
      : "This server runs without --auth, so it observes no flows: only the declarations are drawn and checked.",
    answer.observations_dropped ? ` ${answer.observations_dropped} observations were dropped (the flow table is full): the flows are incomplete.` : "");
    const key = JSON.stringify([answer.services, answer.edges, answer.flows, answer.violations]);
    if (key === drawn) return;
    drawn = key;
    replace(map, flowMap(answer));
    services.update(answer.services.map(serviceRow));
    violations.update(answer.violations.map((violation) => [h("code", {}, violation.rule), clipped(violation.message, 500),
      violation.type ?? "–", violation.service ?? "–", clipped(violation.identity ?? "–", 128)]));
    edges.update(answer.edges.map((edge) => [clipped(edge.from, 140), edge.type, clipped(edge.to, 140), edge.kind,
      edge.declared ? "yes" : "no", edge.seen ? "yes" : "no"]));
    flows.update(answer.flows.map((flow) => [clipped(flow.identity, 128), flow.service ?? "–", flow.kind, flow.type,
      time(flow.first_seen_ms), time(flow.last_seen_ms)]));
  }, (error) => replace(message, problem(error)));
});

function serviceRow(view) {
  const declaration = view.declaration;
  const list = (types) => h("span", { class: "mono" }, (types ?? []).join(", ") || "–");
  return [h("strong", {}, declaration.name), clipped(declaration.identity, 128), list(declaration.owns), list(declaration.consumes),
    list(declaration.requests), list(declaration.answers), clipped(declaration.description ?? "", 300), time(view.registered_at_ms), factLink(view.fact)];
}

function legend() {
  return h("div", { class: "legend muted" },
    h("span", {}, "Left: who writes (or requests). Middle: fact types. Right: who consumes (or answers)."),
    h("span", {}, "Dashed arrows: requests. Faint: declared, not seen. Red: seen, not declared."));
}

/**
 * The map as SVG: an arrow from a writer to a type and from the type to
 * each consumer, for every edge; declared owns and consumes without a
 * counterpart are drawn too, so a lone service still shows.
 */
export function flowMap(answer) {
  const writes = new Map();
  const reads = new Map();
  const add = (into, node, type, style) => {
    const key = `${node}\u0000${type}`;
    const known = into.get(key);
    // A declared and seen edge wins over a lesser one for the same pair.
    if (!known || rank(style) > rank(known.style)) into.set(key, { node, type, style });
  };
  for (const edge of answer.edges.slice(0, MAP_EDGES_MAX)) {
    const style = { kind: edge.kind, declared: edge.declared, seen: edge.seen };
    add(writes, edge.from, edge.type, style);
    add(reads, edge.to, edge.type, style);
  }
  for (const view of answer.services) {
    const declaration = view.declaration;
    const declared = { kind: "event", declared: true, seen: !answer.observing };
    for (const type of declaration.owns ?? []) add(writes, declaration.name, type, declared);
    for (const type of declaration.requests ?? []) add(writes, declaration.name, type, { ...declared, kind: "request" });
    for (const type of declaration.consumes ?? []) add(reads, declaration.name, type, declared);
    for (const type of declaration.answers ?? []) add(reads, declaration.name, type, { ...declared, kind: "request" });
  }
  const sorted = (values) => [...new Set(values)].sort();
  const writers = sorted([...writes.values()].map((entry) => entry.node));
  const types = sorted([...writes.values(), ...reads.values()].map((entry) => entry.type));
  const consumers = sorted([...reads.values()].map((entry) => entry.node));
  if (types.length === 0) return h("p", { class: "empty" }, "Nothing to draw yet: declare services (PUT /v1/services/{name}).");

  const width = (labels) => Math.min(LABEL_CHARS_MAX, Math.max(8, ...labels.map((label) => label.length))) * CHAR_WIDTH_PX + 20;
  const columns = [
    { x: 10, width: width(writers), names: writers, kind: "node" },
    { names: types, width: width(types), kind: "type" },
    { names: consumers, width: width(consumers), kind: "node" },
  ];
  columns[1].x = columns[0].x + columns[0].width + COLUMN_GAP_PX;
  columns[2].x = columns[1].x + columns[1].width + COLUMN_GAP_PX;
  const rows = Math.max(writers.length, types.length, consumers.length);
  const height = rows * (BOX_HEIGHT_PX + BOX_GAP_PX) + BOX_GAP_PX;
  const totalWidth = columns[2].x + columns[2].width + 10;
  const svg = svgElement("svg", { width: totalWidth, height, viewBox: `0 0 ${totalWidth} ${height}`, role: "img",
    "aria-label": `Flow map: ${writers.length} writers, ${types.length} types, ${consumers.length} consumers` });
  const defs = svgElement("defs", {});
  const marker = svgElement("marker", { id: "flow-arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(svgElement("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }));
  defs.append(marker);
  svg.append(defs);

  const positions = columns.map((column) => {
    // Each column is centred vertically, so short columns sit in the middle.
    const offset = ((rows - column.names.length) * (BOX_HEIGHT_PX + BOX_GAP_PX)) / 2;
    return new Map(column.names.map((name, index) => [name, offset + BOX_GAP_PX + index * (BOX_HEIGHT_PX + BOX_GAP_PX)]));
  });
  const edgeLayer = svgElement("g", {});
  svg.append(edgeLayer);
  const arrow = (fromColumn, fromName, toColumn, toName, style, title) => {
    const x1 = columns[fromColumn].x + columns[fromColumn].width;
    const y1 = positions[fromColumn].get(fromName) + BOX_HEIGHT_PX / 2;
    const x2 = columns[toColumn].x;
    const y2 = positions[toColumn].get(toName) + BOX_HEIGHT_PX / 2;
    const middle = (x1 + x2) / 2;
    const classes = ["edge", style.kind === "request" ? "request" : "", style.declared ? "" : "undeclared", style.seen ? "" : "unseen"].filter(Boolean).join(" ");
    const path = svgElement("path", { d: `M ${x1} ${y1} C ${middle} ${y1}, ${middle} ${y2}, ${x2} ${y2}`, class: classes, "marker-end": "url(#flow-arrow)" });
    path.append(svgElement("title", {}, title));
    edgeLayer.append(path);
  };
  for (const entry of writes.values()) arrow(0, entry.node, 1, entry.type, entry.style, `${entry.node} ${entry.style.kind === "request" ? "requests" : "writes"} ${entry.type}`);
  for (const entry of reads.values()) arrow(1, entry.type, 2, entry.node, entry.style, `${entry.node} ${entry.style.kind === "request" ? "answers" : "consumes"} ${entry.type}`);
  columns.forEach((column, index) => {
    for (const name of column.names) {
      const kind = column.kind === "type" ? "type" : name.startsWith("identity:") ? "identity" : "service";
      svg.append(box(column.x, positions[index].get(name), column.width, name, kind, index));
    }
  });
  return svg;
}

const rank = (style) => (style.declared ? 2 : 0) + (style.seen ? 1 : 0);

function box(x, y, width, name, kind, column) {
  const group = svgElement("g", { class: `node ${kind}`, "data-name": name, "data-column": ["writer", "type", "consumer"][column] });
  group.append(svgElement("title", {}, name));
  group.append(svgElement("rect", { x, y, width, height: BOX_HEIGHT_PX, rx: 5 }));
  const label = name.length > LABEL_CHARS_MAX ? `${name.slice(0, LABEL_CHARS_MAX - 1)}…` : name;
  group.append(svgElement("text", { x: x + 10, y: y + BOX_HEIGHT_PX / 2 + 4 }, label));
  return group;
}

/** An SVG element; `text` becomes a text node, never markup. */
function svgElement(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== undefined) element.append(document.createTextNode(text));
  return element;
}
