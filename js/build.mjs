// Bundles the two widget front ends and their stylesheet into ../notebook_llm/static/,
// where the Python classes read them (`_esm`, `_css`). `node build.mjs --dev` skips
// minification and inlines source maps for debugging in the browser.
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const dev = process.argv.includes("--dev");
const outdir = fileURLToPath(new URL("../notebook_llm/static/", import.meta.url));

await mkdir(outdir, { recursive: true });

const result = await esbuild.build({
  entryPoints: ["src/picker.ts", "src/chat.ts", "src/widgets.css"],
  absWorkingDir: fileURLToPath(new URL(".", import.meta.url)),
  outdir,
  entryNames: "[name]",
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  metafile: true,
  logLevel: "warning",
});

for (const [path, output] of Object.entries(result.metafile.outputs)) {
  console.log(`${path.padEnd(40)} ${(output.bytes / 1024).toFixed(1)} KiB`);
}
