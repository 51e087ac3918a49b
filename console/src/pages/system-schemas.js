// Schemas (docs/api-v1.md "Schemas and upcasting"): the types that have
// schemas with their versions, and a type's page with each version's
// schema, compatibility, upcast and predecessor rules as formatted JSON.
import { get, segment } from "../api.js";
import { h, link, problem, replace, section } from "../dom.js";
import { count, pretty } from "../format.js";
import { page } from "../router.js";
import { factLink } from "./facts.js";
import { localPager } from "./collaboration-log.js";
import "./system.css";

const VERSIONS_PER_PAGE = 10;

page("/ui/schemas", async (main, _params, { signal, query }) => {
  const filter = h("input", { type: "search", name: "filter", value: query.get("filter") ?? "", placeholder: "part of a type name", "aria-label": "Filter types" });
  const message = h("div");
  const list = localPager(["Type", "Versions", "Latest", "Compatibility of the latest"], { perPage: 50, id: "schemas", empty: "No type has a schema (or none this identity may read)." });
  main.append(h("h1", {}, "Schemas"), section("Types with schemas", h("div", { class: "row" }, h("label", {}, "Filter ", filter)), message, list.element));
  let types = [];
  const draw = () => {
    const text = filter.value.trim().toLowerCase();
    list.update(types.filter((entry) => entry.type.toLowerCase().includes(text)).map((entry) => {
      const latest = entry.versions.at(-1);
      return [link(`/ui/schemas/${segment(entry.type)}`, entry.type), entry.versions.map((version) => version.version).join(", "),
        count(latest?.version), latest?.compatibility ?? "–"];
    }));
  };
  filter.addEventListener("input", draw);
  try {
    types = (await get("/v1/schemas", {}, { signal })).types;
    draw();
  } catch (error) {
    if (error.name !== "AbortError") replace(message, problem(error));
  }
});

page("/ui/schemas/:type", async (main, { type }, { signal }) => {
  main.append(h("h1", {}, "Schemas of ", h("span", { class: "mono" }, type)), h("p", {}, link("/ui/schemas", "All types with schemas")));
  let versions;
  try {
    versions = (await get(`/v1/schemas/${segment(type)}`, {}, { signal })).versions;
  } catch (error) {
    if (error.name !== "AbortError") main.append(problem(error));
    return;
  }
  const shown = h("div", { id: "schema-versions" });
  const more = h("button", { type: "button", class: "quiet" }, "Older versions");
  const status = h("span", { class: "muted" });
  main.append(shown, h("div", { class: "row" }, more, status));
  // Newest first, a page of versions at a time (a type may have many).
  const newestFirst = [...versions].reverse();
  let position = 0;
  const load = async () => {
    more.disabled = true;
    const batch = newestFirst.slice(position, position + VERSIONS_PER_PAGE);
    position += batch.length;
    try {
      const views = await Promise.all(batch.map((version) => get(`/v1/schemas/${segment(type)}/${version.version}`, {}, { signal })));
      for (const view of views) shown.append(versionSection(view));
      more.disabled = position >= newestFirst.length;
      replace(status, `${count(position)} of ${count(newestFirst.length)} versions shown, newest first`);
    } catch (error) {
      if (error.name !== "AbortError") shown.append(problem(error));
    }
  };
  more.addEventListener("click", load);
  await load();
});

function versionSection(view) {
  return h("section", { class: "card", "data-version": view.version },
    h("h2", {}, `Version ${view.version}`),
    h("dl", { class: "facts" },
      h("dt", {}, "Compatibility"), h("dd", { class: "compatibility" }, view.compatibility),
      h("dt", {}, "Registered as"), h("dd", {}, factLink(view.hash))),
    h("h3", {}, "Schema"), h("pre", { class: "schema-json" }, pretty(view.schema)),
    view.upcast ? [h("h3", {}, "Upcast from the previous version"), h("pre", { class: "upcast-json" }, pretty(view.upcast))] : null,
    view.predecessors ? [h("h3", {}, "Predecessor roles"), h("pre", {}, pretty(view.predecessors))] : null);
}
