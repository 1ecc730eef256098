// Every file verified: a file too large for instant upload is hashed in a
// Web Worker while its bytes are sent (not before), and its row says
// "verified" only when the browser's SHA-256 and the server's agree. A
// copy spoiled on the way (one bit flipped by a proxy, the request
// otherwise whole) is caught, and Retry sends the file again.
import { test, expect, Worker } from "@playwright/test";
import * as path from "node:path";
import { FlipProxy } from "./faultproxy";
import { expectServerCopy, headStatus, makeFile, MIB, openPage, row, setSetting, sha256File, tempDir } from "./helpers";

test("a large file is hashed in a worker while it is sent, and verified", async ({ page, request }) => {
  const workers: { url: string; closed: number }[] = [];
  page.on("worker", (w: Worker) => {
    const seen = { url: w.url(), closed: 0 };
    workers.push(seen);
    w.on("close", () => (seen.closed = Date.now()));
  });
  let firstPatch = 0;
  page.on("request", (r) => {
    if (!firstPatch && r.method() === "PATCH") firstPatch = Date.now();
  });
  const file = makeFile(tempDir(), "verified-large.bin", 48 * MIB + 5, 41);
  await openPage(page);
  await setSetting(page, "setting-instant", 1);
  await page.setInputFiles("#file-input", [file]);
  const r = row(page, path.basename(file));
  await expect(r).toHaveAttribute("data-status", "done", { timeout: 60_000 });
  await expect(r.getByTestId("verified")).toBeVisible();
  await expect(r.getByTestId("sha256").locator("code")).toHaveText(sha256File(file));
  // The hash ran in Ferry's worker, and bytes left before it ended.
  const hasher = workers.find((w) => w.url.endsWith("/hash-worker.js"));
  expect(hasher, `workers: ${JSON.stringify(workers)}`).toBeTruthy();
  await expect.poll(() => hasher!.closed).toBeGreaterThan(0);
  expect(firstPatch).toBeGreaterThan(0);
  expect(firstPatch).toBeLessThan(hasher!.closed);
  await expectServerCopy(request, (await r.getAttribute("data-url"))!, file);
});

test("a copy spoiled on the way is caught, and Retry sends the file again", async ({ page, request }) => {
  const proxy = new FlipProxy(3000, 3 * MIB + 17);
  await proxy.start(3131);
  try {
    const file = makeFile(tempDir(), "spoiled.bin", 20 * MIB, 43);
    const name = path.basename(file);
    await openPage(page, "http://127.0.0.1:3131");
    await setSetting(page, "setting-instant", 1);
    await page.setInputFiles("#file-input", [file]);
    const r = row(page, name);
    await expect(r).toHaveAttribute("data-status", "failed", { timeout: 60_000 });
    expect(proxy.flipped).toBe(1);
    await expect(r.getByTestId("message")).toContainText("not this file");
    await expect(r.getByTestId("verified")).toHaveCount(0);
    const spoiled = (await r.getAttribute("data-url"))!;
    await r.getByTestId("retry").click();
    await expect(r).toHaveAttribute("data-status", "done", { timeout: 60_000 });
    await expect(r.getByTestId("verified")).toBeVisible();
    const url = (await r.getAttribute("data-url"))!;
    expect(url).not.toBe(spoiled);
    await expectServerCopy(request, url, file);
    // The spoiled copy is gone from the server.
    await expect.poll(async () => [404, 410].includes(await headStatus(request, spoiled))).toBe(true);
  } finally {
    await proxy.stop();
  }
});
