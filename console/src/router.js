// Pages by URL. Every page of the console has its own path under /ui/, so
// a person can share it; links inside the console change the path without
// reloading, and the browser's back and forward buttons work.

const routes = [];
let current = null;

/**
 * Adds a page: `pattern` is a path like "/ui/facts/:hash" (`:name` matches
 * one segment); `render(main, params, context)` fills `main` and may return
 * a function to run when the person leaves the page.
 */
export function page(pattern, render) {
  const names = [];
  const source = pattern.replace(/:([a-z_]+)/g, (_, name) => {
    names.push(name);
    return "([^/]+)";
  });
  routes.push({ regex: new RegExp(`^${source}/?$`), names, render });
}

/** Goes to `path` inside the console. */
export function go(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  show();
}

/**
 * Shows the page of the current URL in `main`. Each page gets an
 * AbortSignal that ends its requests and live updates when it is left.
 */
let main = null;
let base = {};
export function start(element, context) {
  main = element;
  base = context;
  addEventListener("popstate", show);
  document.addEventListener("click", (event) => {
    const anchor = event.target.closest?.("a[data-route]");
    if (!anchor || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    go(anchor.getAttribute("href"));
  });
  show();
}

function show() {
  current?.controller.abort();
  current?.leave?.();
  const path = location.pathname;
  const controller = new AbortController();
  main.replaceChildren();
  for (const route of routes) {
    const match = route.regex.exec(path);
    if (!match) continue;
    const params = Object.fromEntries(route.names.map((name, index) => [name, decodeURIComponent(match[index + 1])]));
    const query = new URLSearchParams(location.search);
    current = { controller };
    const context = { ...base, signal: controller.signal, query };
    Promise.resolve(route.render(main, params, context)).then((leave) => {
      if (current?.controller === controller) current.leave = leave;
      else leave?.();
    });
    base.onNavigate?.(path);
    return;
  }
  current = { controller };
  main.append(document.createTextNode(`No page at ${path}.`));
}

/**
 * Runs `step` now and then every `interval_ms` until `signal` aborts; a
 * failed step is passed to `onError` and the loop goes on.
 */
export async function every(interval_ms, signal, step, onError = () => {}) {
  while (!signal.aborted) {
    try {
      await step();
    } catch (error) {
      if (error.name === "AbortError" || signal.aborted) return;
      onError(error);
    }
    await sleep(interval_ms, signal);
  }
}

/** Waits, or ends early when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
