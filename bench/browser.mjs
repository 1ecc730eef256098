// One upload from headless Chromium, timed from choosing the file to the
// end. Prints one JSON line: {"bytes": N, "seconds": S}.
//
//   node bench/browser.mjs BASE_URL FILE [CHUNK_MIB] [hash|verify|parts|sink]
//
// `hash`, `verify` and `parts` go through Ferry's real page, timed until it
// shows the file done, which is once the browser's SHA-256 of the file and
// the server's agree. `hash` sends the file in one stream and hashes it
// before sending it (the instant-upload check, for files up to that
// setting); `verify` turns that off, so the file is hashed in a Web Worker
// while it is sent; `parts` is `verify` with the page's default of four
// parts sent at once (tus concatenation) for files from 128 MiB. `sink`
// measures the browser alone: against `bench/src/bin/sink.rs`, a page sends
// the file in PATCHes of CHUNK_MIB, one `XMLHttpRequest` of a `Blob.slice`
// after another (what Ferry's page does), to a server that drops the bytes.
// Playwright comes from end2end/node_modules (scripts/setup.sh test installs
// it).
import { createRequire } from "node:module";
import { statSync } from "node:fs";

const require = createRequire(new URL("../end2end/package.json", import.meta.url));
const { chromium } = require("@playwright/test");

const [base, file, chunk = "8", mode = "hash"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"],
});

async function throughFerry(page) {
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
  if (mode !== "hash") await set("setting-instant", 0);
  if (mode !== "parts") await set("setting-streams", 1);
  const started = performance.now();
  await page.setInputFiles("#file-input", file);
  await page.waitForSelector('[data-testid="file-row"][data-status="done"]', { timeout: 600_000 });
  return (performance.now() - started) / 1000;
}

async function toSink(page) {
  await page.goto(base + "/");
  await page.setInputFiles("#f", file);
  return page.evaluate(async (chunk) => {
    const f = document.getElementById("f").files[0];
    const started = performance.now();
    for (let at = 0; at < f.size; at += chunk) {
      await new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open("PATCH", "/upload");
        xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
        xhr.upload.onprogress = () => {};
        xhr.onload = () => (xhr.status === 204 ? resolve() : reject(new Error(`status ${xhr.status}`)));
        xhr.onerror = () => reject(new Error("network error"));
        xhr.send(f.slice(at, Math.min(f.size, at + chunk)));
      });
    }
    return (performance.now() - started) / 1000;
  }, Number(chunk) * 1024 * 1024);
}

try {
  const page = await browser.newPage();
  const seconds = mode === "sink" ? await toSink(page) : await throughFerry(page);
  console.log(JSON.stringify({ bytes: statSync(file).size, seconds }));
} finally {
  await browser.close();
}
