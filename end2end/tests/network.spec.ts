import { test, expect } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tus from "tus-js-client";
import { FaultProxy, SizeLimitProxy, SwallowProxy } from "./faultproxy";
import { MIB, expectServerCopy, makeFile, openPage, row, setSetting, sha256File, tempDir } from "./helpers";

const SEED = Number(process.env.FERRY_FAULT_SEED ?? Date.now() % 100000);

test("the page's engine uploads byte-identical files through a faulty network", async ({ page, request }) => {
  // Back-off after faults in a row can add up: allow for it.
  test.setTimeout(180_000);
  const proxy = new FaultProxy(3000, SEED, 0.35);
  await proxy.start(3111);
  try {
    const dir = tempDir();
    const files = [makeFile(dir, "net-a.bin", 12 * MIB, 1), makeFile(dir, "net-b.bin", 9 * MIB + 7, 2)];
    await openPage(page, "http://127.0.0.1:3111");
    await setSetting(page, "setting-chunk", 1);
    await setSetting(page, "setting-instant", 0);
    await page.setInputFiles("#file-input", files);
    for (const f of files) {
      await expect(row(page, path.basename(f))).toHaveAttribute("data-status", "done", { timeout: 150_000 });
      await expectServerCopy(request, (await row(page, path.basename(f)).getAttribute("data-url"))!, f);
    }
    console.log(`faulty network (page, seed ${SEED}): ${proxy.total} faults injected`, proxy.faults);
    expect(proxy.total).toBeGreaterThan(0);
  } finally {
    await proxy.stop();
  }
});

test("a proxy that refuses large requests makes the page send smaller ones, and it remembers", async ({ page, request }) => {
  test.setTimeout(120_000);
  // Like nginx's default client_max_body_size of 1 MiB.
  const proxy = new SizeLimitProxy(3000, 1 * MIB);
  await proxy.start(3112);
  try {
    const dir = tempDir();
    const first = makeFile(dir, "big-a.bin", 5 * MIB + 3, 7);
    await openPage(page, "http://127.0.0.1:3112");
    await setSetting(page, "setting-chunk", 8);
    await setSetting(page, "setting-instant", 0);
    await page.setInputFiles("#file-input", [first]);
    await expect(row(page, path.basename(first))).toHaveAttribute("data-status", "done", { timeout: 90_000 });
    await expectServerCopy(request, (await row(page, path.basename(first)).getAttribute("data-url"))!, first);
    expect(proxy.refused).toBeGreaterThan(0);
    expect(proxy.largestPassed).toBeLessThanOrEqual(1 * MIB);
    const limit = await page.evaluate(() => localStorage.getItem("ferry.chunk-limit.v1"));
    expect(Number(limit)).toBeLessThanOrEqual(1 * MIB);
    // The next file starts at the size that passed: no more refusals.
    const refusedBefore = proxy.refused;
    const second = makeFile(dir, "big-b.bin", 3 * MIB, 8);
    await page.setInputFiles("#file-input", [second]);
    await expect(row(page, path.basename(second))).toHaveAttribute("data-status", "done", { timeout: 90_000 });
    await expectServerCopy(request, (await row(page, path.basename(second)).getAttribute("data-url"))!, second);
    expect(proxy.refused).toBe(refusedBefore);
  } finally {
    await proxy.stop();
  }
});

test("a request that stops moving is given up and resumed from the server's offset", async ({ page, request }) => {
  test.setTimeout(90_000);
  const proxy = new SwallowProxy(3000);
  await proxy.start(3113);
  try {
    const dir = tempDir();
    const file = makeFile(dir, "stalled.bin", 3 * MIB + 5, 9);
    await openPage(page, "http://127.0.0.1:3113");
    await setSetting(page, "setting-chunk", 1);
    await setSetting(page, "setting-instant", 0);
    // A stall is what the person says it is (15 s unless set).
    await setSetting(page, "setting-stall", 4);
    const started = Date.now();
    await page.setInputFiles("#file-input", [file]);
    await expect(row(page, path.basename(file))).toHaveAttribute("data-status", "done", { timeout: 60_000 });
    await expectServerCopy(request, (await row(page, path.basename(file)).getAttribute("data-url"))!, file);
    expect(proxy.swallowed).toBe(1);
    console.log(`stalled request recovered; the upload took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await proxy.stop();
  }
});

test("tus-js-client uploads byte-identical files through a faulty network", async ({ request }) => {
  test.setTimeout(180_000);
  const proxy = new FaultProxy(3000, SEED + 1, 0.6);
  await proxy.start(3112);
  try {
    const dir = tempDir();
    const file = makeFile(dir, "net-js.bin", 16 * MIB + 3, 3);
    const url = await new Promise<string>((resolve, reject) => {
      const upload = new tus.Upload(fs.createReadStream(file), {
        endpoint: "http://127.0.0.1:3112/files/",
        chunkSize: MIB,
        uploadSize: fs.statSync(file).size,
        metadata: { filename: "net-js.bin" },
        retryDelays: Array(60).fill(100),
        onError: reject,
        onSuccess: () => resolve(upload.url!),
      });
      upload.start();
    });
    await expectServerCopy(request, new URL(url).pathname, file);
    expect(sha256File(file)).toHaveLength(64);
    console.log(`faulty network (tus-js-client, seed ${SEED + 1}): ${proxy.total} faults injected`, proxy.faults);
    expect(proxy.total).toBeGreaterThan(0);
  } finally {
    await proxy.stop();
  }
});
