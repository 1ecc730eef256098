// A browser restart mid-upload: a file chosen with the browser's picker
// keeps its handle, and after the browser comes back the interrupted list
// resumes it without the file being chosen again.
//
// The operating system's file dialog is the one thing a test cannot
// drive (Playwright's file chooser does not cover `showOpenFilePicker`),
// so the picker here answers the handle of a file the test wrote to the
// origin's private file system: a real FileSystemFileHandle, kept in
// IndexedDB, restored after the restart and asked for permission as any
// other. The browser is really closed and started again on the same
// profile.
import { test, expect, chromium, BrowserContext, Page } from "@playwright/test";
import * as crypto from "node:crypto";
import { MIB, Server, openPage, row, setSetting, tempDir } from "./helpers";

const NAME = "restart-me.bin";

/** Writes `n` pseudo-random bytes to the origin's private file system as
 * NAME; answers their SHA-256. */
async function writePrivateFile(page: Page, n: number): Promise<string> {
  return page.evaluate(
    async ({ n, name }) => {
      const bytes = new Uint8Array(n);
      let x = 0x9e3779b9;
      for (let i = 0; i < n; i++) {
        x ^= x << 13; x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5; x >>>= 0;
        bytes[i] = x >>> 24;
      }
      const root = await navigator.storage.getDirectory();
      const handle = await root.getFileHandle(name, { create: true });
      const w = await (handle as any).createWritable();
      await w.write(bytes);
      await w.close();
      const digest = await crypto.subtle.digest("SHA-256", bytes);
      return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    },
    { n, name: NAME },
  );
}

test("after a browser restart, a file chosen with the picker resumes without choosing it again", async ({}, testInfo) => {
  test.setTimeout(120_000);
  const server = new Server(3127, tempDir("restart-browser-"));
  await server.start();
  const profile = tempDir("profile-");
  const launch = () =>
    chromium.launchPersistentContext(profile, { ...(testInfo.project.use.launchOptions ?? {}) }).then(async (ctx) => {
      await ctx.addInitScript((name) => {
        (window as any).showOpenFilePicker = async () => {
          const root = await navigator.storage.getDirectory();
          return [await root.getFileHandle(name)];
        };
      }, NAME);
      return ctx;
    });
  let ctx: BrowserContext = await launch();
  try {
    let page = await ctx.newPage();
    await openPage(page, server.base);
    const size = 24 * MIB + 7;
    const sha = await writePrivateFile(page, size);
    await setSetting(page, "setting-chunk", 1);
    await setSetting(page, "setting-instant", 0);
    // A slow uplink, so that the browser is closed mid-way.
    const cdp = await ctx.newCDPSession(page);
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 4 * MIB,
    });
    await page.getByTestId("drop-zone").click();
    const percent = async (p: Page) => parseInt((await row(p, NAME).getByTestId("percent").textContent()) ?? "0");
    await expect.poll(() => percent(page), { timeout: 60_000 }).toBeGreaterThanOrEqual(20);

    // The browser quits, and starts again on the same profile.
    await ctx.close();
    ctx = await launch();
    page = await ctx.newPage();
    const offsets: number[] = [];
    page.on("request", (r) => {
      if (r.method() === "PATCH") offsets.push(Number(r.headers()["upload-offset"]));
    });
    await openPage(page, server.base);
    const item = page.locator(`[data-testid="interrupted-item"][data-name="${NAME}"]`);
    await expect(item).toBeVisible();
    await item.getByTestId("interrupted-resume").click();
    const r = row(page, NAME);
    await expect(r).toHaveAttribute("data-status", "done", { timeout: 60_000 });
    await expect(r.getByTestId("sha256").locator("code")).toHaveText(sha);
    // It went on from where the server was, and the server's copy is the
    // file.
    expect(offsets[0]).toBeGreaterThan(0);
    const copy = await (await fetch(server.base + (await r.getAttribute("data-url"))!)).arrayBuffer();
    expect(crypto.createHash("sha256").update(Buffer.from(copy)).digest("hex")).toBe(sha);
    // Done, the file is forgotten: no resume entry is left.
    expect(await page.evaluate(() => localStorage.getItem("ferry.resume.v1"))).toBe("{}");
    // ... nor its handle.
    const kept = () =>
      page.evaluate(
        () =>
          new Promise<number>((resolve, reject) => {
            const open = indexedDB.open("ferry-handles");
            open.onerror = () => reject(open.error);
            open.onsuccess = () => {
              const count = open.result.transaction("handles").objectStore("handles").count();
              count.onsuccess = () => resolve(count.result);
            };
          }),
      );
    await expect.poll(kept).toBe(0);
    console.log(`resumed after a browser restart at ${(offsets[0] / MIB).toFixed(1)} MiB of ${(size / MIB).toFixed(0)} MiB`);
  } finally {
    await ctx.close();
    await server.kill();
  }
});
