import { test, expect } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tus from "tus-js-client";
import { FaultProxy, SizeLimitProxy, SwallowProxy } from "./faultproxy";
import { MIB, Server, expectServerCopy, makeFile, openPage, row, setSetting, sha256File, tempDir, uploadsCounted } from "./helpers";

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

test("a request creating an upload that is cut, reset or left unanswered never makes a file twice", async ({ page, request }) => {
  test.setTimeout(240_000);
  // A Ferry of the test's own: its counters are this test's alone.
  const server = new Server(3124, tempDir("create-faults-"));
  await server.start();
  const proxy = new FaultProxy(server.port, SEED + 2, 0.4, true);
  await proxy.start(3114);
  try {
    const dir = tempDir();
    // Small files travel whole in the request that creates their upload;
    // the two larger ones are created empty and sent in PATCHes.
    const files = Array.from({ length: 30 }, (_, i) =>
      makeFile(dir, `made-${String(i).padStart(2, "0")}.bin`, 1000 + i * 29_000, 100 + i),
    );
    files.push(makeFile(dir, "made-big-a.bin", 3 * MIB + 11, 140), makeFile(dir, "made-big-b.bin", 2 * MIB, 141));
    // Tall enough to draw every row of the list.
    await page.setViewportSize({ width: 1280, height: 4000 });
    await openPage(page, "http://127.0.0.1:3114");
    await setSetting(page, "setting-chunk", 1);
    await page.setInputFiles("#file-input", files);
    for (const f of files) {
      const r = row(page, path.basename(f));
      await expect(r).toHaveAttribute("data-status", "done", { timeout: 200_000 });
      await expect(r.getByTestId("sha256")).toBeVisible();
      await expectServerCopy(request, (await r.getAttribute("data-url"))!, f, server.base);
    }
    console.log(`faulty network at creation (page, seed ${SEED + 2}): ${proxy.total} faults injected`, proxy.faults);
    // Exactly once: one upload created and completed per file, whatever
    // became of the requests on the way.
    expect(await uploadsCounted(server.base, "created")).toBe(files.length);
    expect(await uploadsCounted(server.base, "completed")).toBe(files.length);
    expect(proxy.faults.inCreations).toBeGreaterThan(0);
    expect(proxy.faults.lostAnswers).toBeGreaterThan(0);
  } finally {
    await proxy.stop();
    await server.kill();
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
