// The console's shell: the header with its navigation, sign-in with an
// access token, the light and dark themes, and the pages by URL.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { ApiError, setToken, token, whoami } from "./api.js";
import { h, problem, replace } from "./dom.js";
import { go, page, start } from "./router.js";
import "./pages/facts.js";
import "./pages/fact.js";
import "./pages/timeline.js";
import "./pages/subscriptions.js";
import "./pages/failures.js";
import "./pages/collaboration.js";
import "./pages/system.js";
import "./pages/server.js";

const THEME_KEY = "cairn.console.theme";
const me = { auth: false, identity: null, permissions: {} };

const navigation = [
  ["/ui/facts", "Facts"],
  ["/ui/subscriptions", "Subscriptions"],
  ["/ui/failures", "Failures"],
  ["/ui/collaboration", "Collaboration"],
  ["/ui/links", "Links"],
  ["/ui/schemas", "Schemas"],
  ["/ui/services", "Services"],
  ["/ui/server", "Server"],
];

const who = h("span", { class: "who" });
const header = h("header", { class: "top" },
  h("a", { href: "/ui/", "data-route": "", class: "brand" },
    h("img", { src: "/ui/assets/icon.svg", alt: "", width: 22, height: 22 }), "Cairn"),
  h("nav", { "aria-label": "Main" },
    navigation.map(([path, label]) => h("a", { href: path, "data-route": "" }, label))),
  h("div", { class: "tools" },
    who,
    h("button", { type: "button", class: "quiet", title: "Light, dark or the system's theme", onclick: cycleTheme }, "Theme")));
const main = h("main", { id: "main" });
document.body.append(header, main);
applyTheme(localStorage.getItem(THEME_KEY) ?? "system");

function cycleTheme() {
  const order = ["system", "light", "dark"];
  const next = order[(order.indexOf(localStorage.getItem(THEME_KEY) ?? "system") + 1) % order.length];
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
}

function showIdentity() {
  if (!me.auth) {
    replace(who, "no authentication");
    return;
  }
  replace(who, me.identity ?? "signed out", " ",
    token()
      ? h("button", { type: "button", class: "quiet", onclick: () => { setToken(null); go("/ui/login"); } }, "Sign out")
      : null);
}

function highlight(path) {
  for (const anchor of header.querySelectorAll("nav a")) {
    anchor.toggleAttribute("aria-current", path.startsWith(anchor.getAttribute("href")));
  }
}

/** Reads who is signed in; false (and the sign-in page) if nobody is. */
async function identify() {
  try {
    Object.assign(me, { identity: null, permissions: {} }, await whoami());
    showIdentity();
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      Object.assign(me, { auth: true, identity: null, permissions: {} });
      showIdentity();
      return false;
    }
    throw error;
  }
}

page("/ui/login", (main, _params, { query }) => {
  const input = h("input", { type: "password", name: "token", autocomplete: "off", required: true, placeholder: "cairn_…", size: 40 });
  const message = h("div");
  const form = h("form", { class: "card narrow" },
    h("h1", {}, "Sign in"),
    h("p", {}, "This server checks access tokens (cairn serve --auth). Paste yours; it is kept in this tab only, and the console shows only what it allows."),
    h("label", {}, "Access token ", input),
    h("button", { type: "submit" }, "Sign in"),
    message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    try {
      if (await identify()) {
        const next = query.get("next");
        go(next?.startsWith("/ui/") ? next : "/ui/facts", { replace: true });
        return;
      }
      replace(message, problem({ code: "unauthenticated", message: "the access token is unknown, expired or revoked" }));
    } catch (error) {
      replace(message, problem(error));
    }
    setToken(null);
  });
  main.append(form);
  input.focus();
});

page("/ui", () => go("/ui/facts", { replace: true }));

const context = {
  me,
  onNavigate: highlight,
  /** Sends the person to sign in when the server refuses their token. */
  signIn: () => go(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`),
};

(async () => {
  try {
    const known = await identify();
    if (!known && location.pathname !== "/ui/login") {
      const next = encodeURIComponent(location.pathname + location.search);
      history.replaceState(null, "", `/ui/login?next=${next}`);
    }
  } catch (error) {
    main.append(problem(error));
  }
  start(main, context);
})();
