// Placeholder, replaced by the pages of this part of the console.
import { h } from "../dom.js";
import { page } from "../router.js";

page("/ui/collaboration", (main) => {
  main.append(h("h1", {}, "collaboration"));
});
