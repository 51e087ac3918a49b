// Builds the console into crates/cairn-server/console/, the files the
// server compiles into its binary: index.html, assets/app.js (every module
// of src/ and uPlot, bundled and minified), assets/app.css, assets/icon.svg.
// The output depends only on the sources and the locked tool versions, so
// CI rebuilds it (into the directory given as the first argument) and
// fails if it differs from what is committed.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

const out = process.argv[2]
  ? `${process.argv[2].replace(/\/$/, "")}/`
  : new URL("../crates/cairn-server/console/", import.meta.url).pathname;
mkdirSync(`${out}assets`, { recursive: true });
await esbuild.build({
  entryPoints: { app: "src/main.js" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  legalComments: "eof",
  outdir: `${out}assets`,
  logLevel: "warning",
});
copyFileSync("index.html", `${out}index.html`);
copyFileSync("icon.svg", `${out}assets/icon.svg`);
