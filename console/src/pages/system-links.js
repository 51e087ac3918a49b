// Replication links (docs/api-v1.md "Replication links"): each link's
// state, lag, last error and source, refreshed every two seconds. Links
// are admin's, so other identities are told so instead of refused.
import { get, may } from "../api.js";
import { h, problem, replace, section } from "../dom.js";
import { ago, count, duration, short } from "../format.js";
import { every, page } from "../router.js";
import { clipped, localPager } from "./collaboration-log.js";
import "./system.css";

page("/ui/links", (main, _params, { signal, me }) => {
  main.append(h("h1", {}, "Replication links"));
  if (!may(me.permissions, "admin")) {
    main.append(section("Links", h("p", { class: "muted" }, "Reading replication links needs the admin permission.")));
    return;
  }
  const message = h("div");
  const list = localPager(["Name", "State", "Lag", "Last error", "Source", "Types", "Received", "Bookmark", "Created"],
    { perPage: 50, id: "links", empty: "No links: this deployment follows no other." });
  main.append(section("Links", h("p", { class: "muted" }, "This deployment follows these sources. Refreshed every two seconds."), message, list.element));
  every(2000, signal, async () => {
    const answer = await get("/v1/links", {}, { signal });
    replace(message);
    list.update(answer.links.map(linkRow));
  }, (error) => replace(message, problem(error)));
});

function linkRow(link) {
  const tone = { running: "good", paused: "", failing: "bad" }[link.state] ?? "";
  const lag = link.lag_facts === 0 ? "caught up" : `${count(link.lag_facts)} facts, ${duration(link.lag_ms)}`;
  return [
    h("span", { class: "mono", "data-link": link.name }, link.name),
    h("span", { class: `badge ${tone}` }, link.state),
    lag,
    link.last_error ? h("span", { class: "link-error" }, clipped(link.last_error, 500)) : "–",
    h("span", { class: "mono" }, clipped(link.source, 200), link.authenticated ? h("span", { class: "muted" }, " (with a token)") : null),
    h("span", { class: "mono" }, link.types.join(", ")),
    count(link.facts_received),
    h("span", { title: link.bookmark?.store ?? "" }, `after ${count(link.bookmark?.after ?? 0)}`,
      link.bookmark?.anchor ? h("span", { class: "muted" }, ` at ${short(link.bookmark.anchor.hash)}`) : null),
    h("span", {}, ago(link.created_at_ms), link.runner ? h("span", { class: "muted" }, ` · run by ${link.runner}`) : null),
  ];
}
