// The form that creates a subscription: one field for every member of a
// definition (docs/api-v1.md "Subscriptions"). The API is the validator:
// the form sends what was typed (blank optional fields left out, numbers
// as numbers, anything else as text) with `PUT /v1/subscriptions/{name}`
// and shows the API's error code and message next to the form.
import "./subscriptions.css";
import { ApiError, get, put, segment } from "../api.js";
import { h, link, problem, replace } from "../dom.js";
import { go, page } from "../router.js";

const INTEGER = /^-?\d+$/;
const NAME_RULE = "a subscription name is 1 to 128 characters of [A-Za-z0-9_.-], starting with a letter or digit";

/** A typed number as a number, anything else as the text (for the API to refuse). */
function number(text) {
  return INTEGER.test(text) ? Number(text) : text;
}

/** The definition from the form's fields; blank optional members are left out. */
export function definitionOf(fields) {
  const value = (name) => fields[name].value.trim();
  const definition = {};
  if (value("type")) definition.type = value("type");
  if (value("predecessor_role") || value("predecessor_hash")) {
    definition.predecessor = { role: value("predecessor_role"), hash: value("predecessor_hash") };
  }
  if (value("start")) definition.start = value("start");
  for (const name of ["lease_ms", "max_attempts"]) {
    if (value(name)) definition[name] = number(value(name));
  }
  if (value("backoff_initial_ms") || value("backoff_max_ms")) {
    definition.backoff = {};
    if (value("backoff_initial_ms")) definition.backoff.initial_ms = number(value("backoff_initial_ms"));
    if (value("backoff_max_ms")) definition.backoff.max_ms = number(value("backoff_max_ms"));
  }
  if (value("ordering_key")) definition.ordering_key = value("ordering_key");
  for (const name of ["max_in_flight_per_key", "rate_limit_per_s", "as_version"]) {
    if (value(name)) definition[name] = number(value(name));
  }
  return definition;
}

page("/ui/subscriptions/new", (main, _params, { signal }) => {
  const field = (name, label, note, attributes = {}) => {
    const input = h("input", { type: "text", name, autocomplete: "off", ...attributes });
    fields[name] = input;
    return h("label", {}, label, input, note ? h("small", {}, note) : null);
  };
  const fields = {};
  const start = h("select", { name: "start" },
    h("option", { value: "" }, "(default: beginning)"), h("option", { value: "beginning" }, "beginning"), h("option", { value: "now" }, "now"));
  fields.start = start;
  const numeric = { inputmode: "numeric" };
  const result = h("div", { class: "form-result", id: "form-result", "aria-live": "polite" });
  const form = h("form", { class: "card", novalidate: true, id: "subscription-form" },
    h("div", { class: "definition-form" },
      field("name", "Name", "letters, digits, _ . - (1 to 128)", { required: true }),
      field("type", "Type", "the fact type it delivers, e.g. Shop.Order", { required: true }),
      h("fieldset", {}, h("legend", {}, "Predecessor (optional)"),
        field("predecessor_role", "Role"), field("predecessor_hash", "Hash", null, { class: "mono" })),
      h("label", {}, "Start", start, h("small", {}, "beginning of the log, or only facts written from now")),
      field("lease_ms", "Lease (ms)", "default 30000; 100 to 3,600,000", numeric),
      field("max_attempts", "Max attempts", "default 5; 1 to 1,000", numeric),
      h("fieldset", {}, h("legend", {}, "Backoff (optional)"),
        field("backoff_initial_ms", "Initial (ms)", "default 200", numeric),
        field("backoff_max_ms", "Max (ms)", "default 60000", numeric)),
      field("ordering_key", "Ordering key", "a predecessor role (optional)"),
      field("max_in_flight_per_key", "Max in flight per key", "default 1, only with an ordering key", numeric),
      field("rate_limit_per_s", "Rate limit (messages/s)", "optional; 1 to 1,000,000", numeric),
      field("as_version", "As schema version", "optional: deliver upcast to this version", numeric)),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Create subscription"), link("/ui/subscriptions", "Cancel")),
    result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = fields.name.value.trim();
    const definition = definitionOf(fields);
    replace(result);
    if (!name) {
      // No path to ask the API with: its own refusal of a bad name, word for word.
      replace(result, problem({ code: "invalid_definition", message: NAME_RULE }));
      return;
    }
    try {
      // A PUT over an existing subscription would change it: this form only creates.
      const existing = await get(`/v1/subscriptions/${segment(name)}`, {}, { signal }).catch((error) => {
        if (error instanceof ApiError && (error.status === 404 || error.status === 400)) return null;
        throw error;
      });
      if (existing) {
        replace(result, problem({ code: "subscription_exists", message: `a subscription named ${name} already exists; this form only creates` }),
          link(`/ui/subscriptions/${segment(name)}`, `Open ${name}`));
        return;
      }
      await put(`/v1/subscriptions/${segment(name)}`, definition, { signal });
      go(`/ui/subscriptions/${segment(name)}`);
    } catch (error) {
      if (error.name !== "AbortError") replace(result, problem(error));
    }
  });
  main.append(h("h1", {}, "New subscription"),
    h("p", { class: "muted" }, "Blank optional fields take the server's defaults. The server checks the definition and says what it refuses."),
    form);
  fields.name.focus();
});
