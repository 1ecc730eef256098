// Every file verified: a file too large for instant upload is hashed in a
// Web Worker while its bytes are sent (not before), and its row says
// "verified" only when the browser's SHA-256 and the server's agree. A
// copy spoiled on the way (one bit flipped by a proxy, the request
// otherwise whole) is caught, and Retry sends the file again. A large
// file is hashed before it is sent only when its sample (half a MiB read
// from across it) says the server may hold it: then its copy is an
// instant upload.
import { test, expect, Request, Worker } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import { FlipProxy } from "./faultproxy";
import { expectServerCopy, headStatus, makeFile, MIB, openPage, row, Server, setSetting, sha256File, tempDir, uploadsCounted } from "./helpers";

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

test("a large file is hashed first only when its sample says the server may hold it: a copy is an instant upload", async ({ page, request }) => {
  test.setTimeout(150_000);
  const server = new Server(3128, tempDir("sample-"));
  await server.start();
  try {
    const dir = tempDir();
    const original = makeFile(dir, "original.bin", 24 * MIB + 3, 61);
    // The same bytes under another name and date: not found by fingerprint.
    const copy = path.join(dir, "copy-of-original.bin");
    fs.copyFileSync(original, copy);
    fs.utimesSync(copy, new Date(), new Date(Date.now() - 3_600_000));
    const stranger = makeFile(dir, "stranger.bin", 24 * MIB + 3, 62);
    // The original with one byte changed between the sampled ranges: the
    // sample agrees, the SHA-256 does not.
    const lookalike = path.join(dir, "lookalike.bin");
    const bytes = fs.readFileSync(original);
    bytes[100 * 1024] ^= 0xff;
    fs.writeFileSync(lookalike, bytes);

    const seen: { method: string; url: string; concat: string; meta: string }[] = [];
    page.on("request", (r: Request) => {
      if (!r.url().includes("/files") && !r.url().includes("/api/likely_stored")) return;
      const h = r.headers();
      seen.push({ method: r.method(), url: r.url(), concat: h["upload-concat"] ?? "", meta: h["upload-metadata"] ?? "" });
    });
    // Where each upload created whole (not a part or a join) was made.
    const madeWhole: string[] = [];
    page.on("response", (r) => {
      const q = r.request();
      if (q.method() === "POST" && q.url().includes("/files") && !q.headers()["upload-concat"] && r.status() === 201) {
        madeWhole.push(r.headers()["location"]);
      }
    });
    const asked = () => seen.filter((s) => s.url.includes("/api/likely_stored")).length;
    const partials = () => seen.filter((s) => s.method === "POST" && s.concat === "partial").length;
    const patches = () => seen.filter((s) => s.method === "PATCH").length;
    const send = async (file: string) => {
      seen.length = 0;
      await page.setInputFiles("#file-input", [file]);
      const r = row(page, path.basename(file));
      await expect(r).toHaveAttribute("data-status", "done", { timeout: 90_000 });
      await expect(r.getByTestId("verified")).toBeVisible();
      await expect(r.getByTestId("sha256").locator("code")).toHaveText(sha256File(file));
      await expectServerCopy(request, (await r.getAttribute("data-url"))!, file, server.base);
    };

    await openPage(page, server.base);
    await setSetting(page, "setting-chunk", 4);
    await setSetting(page, "setting-instant", 1);
    await setSetting(page, "setting-streams", 4);
    await setSetting(page, "setting-streams-from", 8);

    // Nothing like it on the server: not hashed first, sent in parts.
    await send(original);
    expect(asked()).toBe(1);
    expect(partials()).toBe(4);
    expect(await uploadsCounted(server.base, "created")).toBe(5);

    // Its copy: the sample agrees, the page hashes it first and creates it
    // whole with its SHA-256, and the server has it at once: no bytes sent.
    await send(copy);
    expect(asked()).toBe(1);
    const creations = seen.filter((s) => s.method === "POST" && s.url.includes("/files"));
    expect(creations).toHaveLength(1);
    expect(creations[0].concat).toBe("");
    expect(creations[0].meta).toContain("sha256 ");
    expect(patches()).toBe(0);
    expect(await uploadsCounted(server.base, "created")).toBe(6);

    // Another file of that size: the sample differs, so it is not hashed
    // first and goes in parts like the first.
    await send(stranger);
    expect(asked()).toBe(1);
    expect(partials()).toBe(4);
    expect(patches()).toBeGreaterThan(0);

    // The lookalike: hashed first (its sample agrees) and created whole
    // with its SHA-256, which the server has not; that upload is let go
    // and the file goes in parts after all.
    await send(lookalike);
    expect(asked()).toBe(1);
    const whole = seen.filter((s) => s.method === "POST" && s.url.includes("/files") && s.concat === "");
    expect(whole).toHaveLength(1);
    expect(whole[0].meta).toContain("sha256 ");
    expect(partials()).toBe(4);
    const letGo = new URL(madeWhole[madeWhole.length - 1], server.base).pathname;
    expect(await headStatus(request, letGo, server.base)).toBe(404);
  } finally {
    await server.kill();
  }
});
