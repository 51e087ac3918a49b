// Building the page without markup: every string a server sends (fact
// fields, type names, error texts) becomes a text node, never HTML, so a
// hostile value is shown as what it is and cannot run.

/**
 * Makes an element. `attributes` are set as properties where the element
 * has one (`value`, `checked`, `disabled`), `on*` functions become event
 * listeners, `class` and other names become attributes; `children` are
 * nodes, strings or numbers (as text), arrays of those, or null (skipped).
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name in element && name !== "list" && name !== "form") {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

/** Appends children as `h` takes them. */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces the children of `parent`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** A link inside the console, followed without reloading the page. */
export function link(path, ...children) {
  return h("a", { href: path, "data-route": "" }, ...children);
}

/** A table from a header row and rows of cells. */
export function table(headers, rows, { empty = "Nothing here." } = {}) {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-scroll" },
    h("table", {},
      h("thead", {}, h("tr", {}, headers.map((header) => h("th", { scope: "col" }, header)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell)))))));
}

/** A titled section of a page. */
export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

/** A message that something failed, with the API's error code and text. */
export function problem(error) {
  return h("p", { class: "problem", role: "alert" },
    error?.code ? h("code", {}, error.code) : null,
    error?.code ? " " : null,
    error?.message ?? String(error));
}
