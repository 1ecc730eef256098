// One upload through Ferry's real page in headless Chromium, timed from
// choosing the file to the page showing it done. Prints one JSON line:
// {"bytes": N, "seconds": S}.
//
//   node bench/browser.mjs BASE_URL FILE [CHUNK_MIB] [hash|nohash]
//
// `nohash` turns off the page's SHA-256 of small files before upload (the
// instant-upload check), leaving the transfer alone. Playwright comes from
// end2end/node_modules (scripts/setup.sh test installs it).
import { createRequire } from "node:module";
import { statSync } from "node:fs";

const require = createRequire(new URL("../end2end/package.json", import.meta.url));
const { chromium } = require("@playwright/test");

const [base, file, chunk = "8", hash = "hash"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"],
});
try {
  const page = await browser.newPage();
  await page.goto(base + "/");
  await page.waitForSelector('body[data-hydrated="true"]');
  const settings = page.locator("details.settings");
  await settings.locator("summary").click();
  const set = async (id, value) => {
    const input = page.getByTestId(id);
    await input.fill(String(value));
    await input.dispatchEvent("change");
  };
  await set("setting-chunk", chunk);
  if (hash === "nohash") await set("setting-instant", 0);
  const started = performance.now();
  await page.setInputFiles("#file-input", file);
  await page.waitForSelector('[data-testid="file-row"][data-status="done"]', { timeout: 600_000 });
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ bytes: statSync(file).size, seconds }));
} finally {
  await browser.close();
}
