import { test, expect, Request } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  MIB, Server, expectServerCopy, headStatus, makeFile, makePng, openPage, row, setSetting, tempDir,
} from "./helpers";

/** Records the tus requests a page makes. */
function watchRequests(page: import("@playwright/test").Page) {
  const seen: { method: string; url: string; offset: number | null }[] = [];
  page.on("request", (r: Request) => {
    if (!r.url().includes("/files")) return;
    const off = r.headers()["upload-offset"];
    seen.push({ method: r.method(), url: r.url(), offset: off === undefined ? null : Number(off) });
  });
  return {
    patches: () => seen.filter((s) => s.method === "PATCH"),
    posts: () => seen.filter((s) => s.method === "POST"),
  };
}

test("three files with a PNG: thumbnail, 100 %, identical server copies", async ({ page, request }) => {
  const dir = tempDir();
  const files = [
    makePng(dir, "picture.png"),
    makeFile(dir, "notes.txt", 200_000, 1),
    makeFile(dir, "data.bin", 3 * MIB + 17, 2),
  ];
  await openPage(page);
  await page.setInputFiles("#file-input", files);
  await expect(row(page, "picture.png").getByTestId("thumbnail")).toBeVisible();
  for (const name of ["picture.png", "notes.txt", "data.bin"]) {
    await expect(row(page, name)).toHaveAttribute("data-status", "done");
    await expect(row(page, name).getByTestId("percent")).toHaveText("100%");
    // Hashed in the browser, so the server's SHA-256 is shown as verified.
    await expect(row(page, name).getByTestId("verified")).toBeVisible();
  }
  await expect(page.getByTestId("total-percent")).toHaveText("100%");
  for (const [i, name] of ["picture.png", "notes.txt", "data.bin"].entries()) {
    const url = await row(page, name).getAttribute("data-url");
    await expectServerCopy(request, url!, files[i]);
  }
  // The finished list shows them with their SHA-256.
  await expect(page.getByTestId("uploaded-item")).toHaveCount(3);
});

test("the page says what its buttons do, counts an empty file honestly and shows one file picker", async ({ page, request }) => {
  const dir = tempDir();
  const empty = makeFile(dir, "empty.txt", 0, 1);
  const small = makeFile(dir, "small.txt", 1000, 2);
  await openPage(page);
  // Once hydrated, the drop zone is the picker; the native input is kept
  // for assistive tools only.
  await expect(page.locator("#file-input")).toHaveClass(/sr-only/);
  await page.setInputFiles("#file-input", [empty, small]);
  for (const name of ["empty.txt", "small.txt"]) {
    await expect(row(page, name)).toHaveAttribute("data-status", "done");
    await expect(row(page, name).getByTestId("percent")).toHaveText("100%");
    // On a finished file the button removes the server's copy, and says so.
    await expect(row(page, name).getByTestId("cancel")).toHaveText("Remove from server");
  }
  await expectServerCopy(request, (await row(page, "empty.txt").getAttribute("data-url"))!, empty);
  const url = (await row(page, "small.txt").getAttribute("data-url"))!;
  await row(page, "small.txt").getByTestId("cancel").click();
  await expect(row(page, "small.txt")).toHaveCount(0);
  await expect.poll(async () => (await request.head(url, { headers: { "Tus-Resumable": "1.0.0" } })).status()).toBe(404);
});

test("pause keeps the server's copy and resume sends only the rest", async ({ page, request }) => {
  test.setTimeout(120_000);
  const dir = tempDir();
  const file = makeFile(dir, "pausable.bin", 24 * MIB + 5, 11);
  const seen = watchRequests(page);
  await openPage(page);
  await setSetting(page, "setting-chunk", 1);
  await setSetting(page, "setting-instant", 0);
  // A slow uplink (about 4 MB/s), so there is time to pause.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 4 * MIB,
  });
  await page.setInputFiles("#file-input", [file]);
  const r = row(page, "pausable.bin");
  await expect.poll(() => seen.patches().length, { timeout: 30_000 }).toBeGreaterThan(2);
  await r.getByTestId("pause").click();
  await expect(r).toHaveAttribute("data-status", "paused");
  await expect(r.getByTestId("resume")).toBeVisible();
  const url = (await r.getAttribute("data-url"))!;
  const offset = async () =>
    Number((await request.head(url, { headers: { "Tus-Resumable": "1.0.0" } })).headers()["upload-offset"]);
  // The cut request's bytes are kept by the server; then nothing moves.
  await page.waitForTimeout(1000);
  const at = await offset();
  expect(at).toBeGreaterThan(0);
  expect(at).toBeLessThan(24 * MIB + 5);
  const patchesWhilePaused = seen.patches().length;
  await page.waitForTimeout(1500);
  expect(await offset()).toBe(at);
  expect(seen.patches().length).toBe(patchesWhilePaused);
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
  });
  await r.getByTestId("resume").click();
  await expect(r).toHaveAttribute("data-status", "done", { timeout: 60_000 });
  await expectServerCopy(request, url, file);
  const resumed = seen.patches().slice(patchesWhilePaused);
  expect(resumed.length).toBeGreaterThan(0);
  expect(resumed[0].offset).toBe(at);
});

test("a 64 MiB file in 4 MiB chunks takes at least 16 PATCH requests", async ({ page, request }) => {
  const dir = tempDir();
  const file = makeFile(dir, "big.bin", 64 * MIB, 3);
  await openPage(page);
  await setSetting(page, "setting-chunk", 4);
  await setSetting(page, "setting-instant", 0);
  const reqs = watchRequests(page);
  await page.setInputFiles("#file-input", file);
  await expect(row(page, "big.bin")).toHaveAttribute("data-status", "done", { timeout: 60_000 });
  await expect(page.getByTestId("total-percent")).toHaveText("100%");
  expect(reqs.patches().length).toBeGreaterThanOrEqual(16);
  await expectServerCopy(request, (await row(page, "big.bin").getAttribute("data-url"))!, file);
});

test("cancelling one file mid-upload deletes it; the others finish", async ({ page, request }) => {
  const dir = tempDir();
  const big = makeFile(dir, "cancel-me.bin", 48 * MIB, 4);
  const a = makeFile(dir, "keep-a.bin", 2 * MIB, 5);
  const b = makeFile(dir, "keep-b.bin", 3 * MIB, 6);
  await openPage(page);
  await setSetting(page, "setting-chunk", 1);
  await setSetting(page, "setting-instant", 0);
  await page.setInputFiles("#file-input", [big, a, b]);
  const victim = row(page, "cancel-me.bin");
  await expect(victim).toHaveAttribute("data-status", "uploading");
  await expect(victim).not.toHaveAttribute("data-url", "");
  await expect.poll(async () => parseInt((await victim.getByTestId("percent").textContent()) ?? "0")).toBeGreaterThan(0);
  const url = (await victim.getAttribute("data-url"))!;
  await victim.getByTestId("cancel").click();
  await expect(victim).toHaveCount(0);
  await expect(row(page, "keep-a.bin")).toHaveAttribute("data-status", "done");
  await expect(row(page, "keep-b.bin")).toHaveAttribute("data-status", "done");
  await expect.poll(() => headStatus(request, url)).toBe(404);
  await expectServerCopy(request, (await row(page, "keep-a.bin").getAttribute("data-url"))!, a);
});

test("cancel all stops and deletes everything", async ({ page, request }) => {
  const dir = tempDir();
  const files = [0, 1, 2].map((i) => makeFile(dir, `all-${i}.bin`, 24 * MIB, 10 + i));
  await openPage(page);
  await setSetting(page, "setting-chunk", 1);
  await setSetting(page, "setting-instant", 0);
  await page.setInputFiles("#file-input", files);
  await expect(row(page, "all-0.bin")).toHaveAttribute("data-status", "uploading");
  await expect(row(page, "all-0.bin")).not.toHaveAttribute("data-url", "");
  const urls = await page.locator('[data-testid="file-row"]').evaluateAll((rows) =>
    rows.map((r) => r.getAttribute("data-url")).filter((u) => u),
  );
  expect(urls.length).toBeGreaterThan(0);
  await page.getByTestId("cancel-all").click();
  await expect(page.getByTestId("file-row")).toHaveCount(0);
  for (const url of urls) {
    await expect.poll(() => headStatus(request, url!)).toBe(404);
  }
});

test("after a reload, choosing the file again resumes where it stopped", async ({ page, request }) => {
  const dir = tempDir();
  const size = 32 * MIB;
  const chunk = 2 * MIB;
  const file = makeFile(dir, "resume.bin", size, 20);
  await openPage(page);
  await setSetting(page, "setting-chunk", 2);
  await setSetting(page, "setting-instant", 0);
  const reqs = watchRequests(page);
  await page.setInputFiles("#file-input", file);
  await expect.poll(async () => parseInt((await row(page, "resume.bin").getByTestId("percent").textContent()) ?? "0"))
    .toBeGreaterThanOrEqual(30);
  await page.reload();
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  const item = page.locator('[data-testid="interrupted-item"][data-name="resume.bin"]');
  await expect(item).toBeVisible();
  const before = reqs.patches().length;
  await page.setInputFiles("#file-input", file);
  await expect(row(page, "resume.bin")).toHaveAttribute("data-status", "done", { timeout: 60_000 });
  const after = reqs.patches().slice(before);
  expect(after[0].offset).toBeGreaterThan(0);
  // Bytes sent in all (each PATCH carries at most one chunk from its offset).
  const sent = reqs.patches().reduce((sum, p) => sum + Math.min(chunk, size - (p.offset ?? 0)), 0);
  expect(sent).toBeLessThan(size + chunk);
  await expectServerCopy(request, (await row(page, "resume.bin").getAttribute("data-url"))!, file);
});

test("the upload completes across a server restart", async ({ page, request }) => {
  const server = new Server(3101, tempDir("restart-"));
  await server.start();
  try {
    const dir = tempDir();
    const file = makeFile(dir, "restart.bin", 24 * MIB, 30);
    await openPage(page, server.base);
    await setSetting(page, "setting-chunk", 1);
    await setSetting(page, "setting-instant", 0);
    await page.setInputFiles("#file-input", file);
    await expect.poll(async () => parseInt((await row(page, "restart.bin").getByTestId("percent").textContent()) ?? "0"))
      .toBeGreaterThanOrEqual(20);
    await server.kill();
    await expect(row(page, "restart.bin")).toHaveAttribute("data-status", "retrying");
    await server.start();
    await expect(row(page, "restart.bin")).toHaveAttribute("data-status", "done", { timeout: 60_000 });
    await expectServerCopy(request, (await row(page, "restart.bin").getAttribute("data-url"))!, file, server.base);
  } finally {
    await server.kill();
  }
});

test("PATCH requests aborted on the way are retried and the upload completes", async ({ page, request }) => {
  const dir = tempDir();
  const file = makeFile(dir, "flaky.bin", 8 * MIB, 40);
  await openPage(page);
  await setSetting(page, "setting-chunk", 1);
  await setSetting(page, "setting-instant", 0);
  let patches = 0;
  let aborted = 0;
  await page.route("**/files/**", async (route) => {
    if (route.request().method() === "PATCH" && patches++ % 3 === 1) {
      aborted++;
      await route.abort("connectionreset");
    } else {
      await route.continue();
    }
  });
  await page.setInputFiles("#file-input", file);
  await expect(row(page, "flaky.bin")).toHaveAttribute("data-status", "done", { timeout: 60_000 });
  expect(aborted).toBeGreaterThan(0);
  await page.unroute("**/files/**");
  await expectServerCopy(request, (await row(page, "flaky.bin").getAttribute("data-url"))!, file);
});

test("a file over the server's maximum size shows the server's message and is not retried", async ({ page }) => {
  const server = new Server(3102, tempDir("limit-"), ["--max-size", "1MiB"]);
  await server.start();
  try {
    const dir = tempDir();
    const file = makeFile(dir, "too-big.bin", 2 * MIB, 50);
    await openPage(page, server.base);
    await setSetting(page, "setting-instant", 0);
    // A page that could not learn the rules: the server says no itself.
    const reqs = watchRequests(page);
    await page.route("**/api/upload_rules", (route) => route.abort());
    await page.reload();
    await page.waitForSelector("body[data-hydrated=true]");
    await page.setInputFiles("#file-input", file);
    const r = row(page, "too-big.bin");
    await expect(r).toHaveAttribute("data-status", "failed");
    await expect(r.getByTestId("message")).toContainText("at most 1048576 bytes");
    await page.waitForTimeout(1500);
    expect(reqs.posts().length).toBe(1);
    expect(reqs.patches().length).toBe(0);
  } finally {
    await server.kill();
  }
});

test("the server's rules refuse files before anything is sent, each saying why", async ({ page, request }) => {
  const server = new Server(3103, tempDir("rules-"), [
    "--max-size", "1MiB", "--allow-types", "image/*,.txt", "--max-files-per-batch", "2",
  ]);
  await server.start();
  try {
    const dir = tempDir();
    const big = makeFile(dir, "too-big.txt", 2 * MIB, 50);
    const exe = makeFile(dir, "setup.exe", 1000, 51);
    const a = makeFile(dir, "a.txt", 1000, 52);
    const png = makePng(dir, "b.png");
    const c = makeFile(dir, "c.txt", 1000, 53);
    await openPage(page, server.base);
    // The picker offers only what the server takes, once it said so.
    await expect(page.locator("#file-input")).toHaveAttribute("accept", "image/*,.txt");
    const reqs = watchRequests(page);
    await page.setInputFiles("#file-input", [big, exe, a, png, c]);
    await expect(row(page, "too-big.txt")).toHaveAttribute("data-status", "refused");
    await expect(row(page, "too-big.txt").getByTestId("message")).toContainText("up to 1.05 MB");
    await expect(row(page, "setup.exe")).toHaveAttribute("data-status", "refused");
    await expect(row(page, "setup.exe").getByTestId("message")).toContainText("image/*, .txt");
    await expect(row(page, "c.txt")).toHaveAttribute("data-status", "refused");
    await expect(row(page, "c.txt").getByTestId("message")).toContainText("at most 2");
    for (const [name, file] of [["a.txt", a], ["b.png", png]]) {
      const r = row(page, name);
      await expect(r).toHaveAttribute("data-status", /done|already-uploaded/, { timeout: 20_000 });
      await expectServerCopy(request, (await r.getAttribute("data-url"))!, file, server.base);
    }
    // Nothing of the refused files ever left the browser.
    expect(reqs.posts().length).toBe(2);
    await expect(page.getByTestId("total-percent")).toContainText("100");
  } finally {
    await server.kill();
  }
});

test("new files that do not fit in the owner's room are refused before sending", async ({ page, request }) => {
  const server = new Server(3104, tempDir("room-"), ["--max-bytes-per-owner", "100KB"]);
  await server.start();
  try {
    const dir = tempDir();
    const first = makeFile(dir, "first.bin", 60_000, 81);
    const second = makeFile(dir, "second.bin", 60_000, 82);
    await openPage(page, server.base);
    await setSetting(page, "setting-instant", 0);
    const reqs = watchRequests(page);
    await page.setInputFiles("#file-input", [first, second]);
    await expect(row(page, "first.bin")).toHaveAttribute("data-status", "done", { timeout: 20_000 });
    await expect(row(page, "second.bin")).toHaveAttribute("data-status", "refused");
    await expect(row(page, "second.bin").getByTestId("message")).toContainText("Not enough room");
    await expectServerCopy(request, (await row(page, "first.bin").getAttribute("data-url"))!, first, server.base);
    expect(reqs.posts().length).toBe(1);
  } finally {
    await server.kill();
  }
});

test("a file already on the server is skipped as already uploaded", async ({ page }) => {
  const dir = tempDir();
  const file = makeFile(dir, "twice.bin", 3 * MIB, 60);
  await openPage(page);
  await setSetting(page, "setting-instant", 0);
  await page.setInputFiles("#file-input", file);
  await expect(row(page, "twice.bin")).toHaveAttribute("data-status", "done");
  await page.reload();
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  const reqs = watchRequests(page);
  await page.setInputFiles("#file-input", file);
  await expect(row(page, "twice.bin")).toHaveAttribute("data-status", "already-uploaded");
  await expect(row(page, "twice.bin").getByTestId("percent")).toHaveText("100%");
  await page.waitForTimeout(500);
  expect(reqs.posts().length).toBe(0);
  expect(reqs.patches().length).toBe(0);
});

test("the page works at 360 px and in Chinese", async ({ page }) => {
  await page.setViewportSize({ width: 360, height: 740 });
  const dir = tempDir();
  const long = "a-very-long-file-name-".repeat(8) + ".bin";
  const file = makeFile(dir, long, 100_000, 70);
  await openPage(page);
  await page.getByTestId("language").selectOption("zh-CN");
  await expect(page.locator("#send-title")).toHaveText("上传文件");
  await page.setInputFiles("#file-input", file);
  await expect(row(page, long)).toHaveAttribute("data-status", "done");
  await expect(row(page, long)).toContainText("已完成");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  expect(overflow).toBe(false);
});

test("a chosen folder keeps each file's path, on the page, in the list and on the server", async ({ page, request }) => {
  const root = tempDir("folder-");
  const top = path.join(root, "holiday");
  fs.mkdirSync(path.join(top, "day 1"), { recursive: true });
  const a = makeFile(path.join(top, "day 1"), "beach.bin", 200_000, 71);
  const b = makeFile(top, "notes.bin", 50_000, 72);
  // The same name, size, content and time in another folder is another file.
  fs.mkdirSync(path.join(top, "day 2"));
  const c = makeFile(path.join(top, "day 2"), "beach.bin", 200_000, 71);
  const when = new Date("2024-06-01T12:00:00Z");
  fs.utimesSync(a, when, when);
  fs.utimesSync(c, when, when);
  await openPage(page);
  await page.setInputFiles("#folder-input", top);
  const rows = page.getByTestId("file-row");
  await expect(rows).toHaveCount(3);
  for (const r of await rows.all()) {
    await expect(r).toHaveAttribute("data-status", /done|already-uploaded/, { timeout: 20_000 });
  }
  const beaches = page.locator('[data-testid="file-row"][data-name="beach.bin"]');
  await expect(beaches.getByTestId("folder")).toHaveText(["holiday/day 1/", "holiday/day 2/"]);
  await expect(row(page, "notes.bin").getByTestId("folder")).toHaveText("holiday/");
  const byFolder: Record<string, string> = { "holiday/day 1/": a, "holiday/day 2/": c, "holiday/": b };
  for (const r of await rows.all()) {
    const folder = ((await r.getByTestId("folder").textContent()) ?? "").replace(/\s+\/$/, "/").trim();
    const file = byFolder[folder];
    expect(file, folder).toBeTruthy();
    const url = (await r.getAttribute("data-url"))!;
    await expectServerCopy(request, url, file);
    const head = await request.head(url, { headers: { "Tus-Resumable": "1.0.0" } });
    const meta = head.headers()["upload-metadata"];
    const rel = folder + path.basename(file);
    expect(meta).toContain("relativePath " + Buffer.from(rel).toString("base64"));
  }
  // The finished list shows where each came from.
  const listed = page.locator('[data-testid="uploaded-item"][data-name="beach.bin"]').getByTestId("folder");
  await expect(listed.first()).toBeVisible({ timeout: 15_000 });
  const folders = await listed.allTextContents();
  expect(folders.map((f) => f.trim()).sort()).toEqual(expect.arrayContaining(["holiday/day 1/", "holiday/day 2/"]));
});

test("files dropped on the drop zone are uploaded whole", async ({ page, request }) => {
  await openPage(page);
  const dt = await page.evaluateHandle(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(["hello, dropped"], "dropped-a.txt", { type: "text/plain" }));
    dt.items.add(new File([new Uint8Array(70_000).fill(7)], "dropped-b.bin"));
    return dt;
  });
  await page.getByTestId("drop-zone").dispatchEvent("drop", { dataTransfer: dt });
  for (const [name, size] of [["dropped-a.txt", 14], ["dropped-b.bin", 70_000]] as const) {
    const r = row(page, name);
    await expect(r).toHaveAttribute("data-status", /done|already-uploaded/, { timeout: 20_000 });
    await expect(r.getByTestId("folder")).toHaveCount(0);
    const got = await request.get((await r.getAttribute("data-url"))!);
    expect((await got.body()).length).toBe(size);
  }
});
