// A browser restart mid-upload: a file chosen with the browser's picker,
// or dropped alone or in a folder, keeps its handle (a dropped folder's
// file: the folder's, and its path), and after the browser comes back the
// interrupted list resumes it without the file being chosen again.
//
// The operating system's file dialog is the one thing a test cannot
// drive (Playwright's file chooser does not cover `showOpenFilePicker`),
// so the picker here answers the handle of a file the test wrote to the
// origin's private file system (and a drop from the desktop, likewise,
// gives handles and entries of that file system): a real FileSystemFileHandle, kept in
// IndexedDB, restored after the restart and asked for permission as any
// other. The browser is really closed and started again on the same
// profile.
import { test, expect, chromium, BrowserContext, Page } from "@playwright/test";
import * as crypto from "node:crypto";
import { MIB, Server, openPage, row, setSetting, tempDir, uploadsCounted } from "./helpers";

const NAME = "restart-me.bin";

/** Writes `n` pseudo-random bytes (from `seed`) to the origin's private
 * file system as `name` (a path: folders are made); answers their
 * SHA-256. */
async function writePrivateFile(page: Page, n: number, name = NAME, seed = 0x9e3779b9): Promise<string> {
  return page.evaluate(
    async ({ n, name, seed }) => {
      const bytes = new Uint8Array(n);
      let x = seed;
      for (let i = 0; i < n; i++) {
        x ^= x << 13; x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5; x >>>= 0;
        bytes[i] = x >>> 24;
      }
      let dir = await navigator.storage.getDirectory();
      const names = name.split("/");
      for (const folder of names.slice(0, -1)) dir = await dir.getDirectoryHandle(folder, { create: true });
      const handle = await dir.getFileHandle(names[names.length - 1], { create: true });
      const w = await (handle as any).createWritable();
      await w.write(bytes);
      await w.close();
      const digest = await crypto.subtle.digest("SHA-256", bytes);
      return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    },
    { n, name, seed },
  );
}

/** The page opened again in a restarted browser, and the offsets of the
 * PATCHes it sends from then on. */
async function reopen(ctx: BrowserContext, base: string): Promise<{ page: Page; offsets: number[] }> {
  const page = await ctx.newPage();
  const offsets: number[] = [];
  page.on("request", (r) => {
    if (r.method() === "PATCH") offsets.push(Number(r.headers()["upload-offset"]));
  });
  await openPage(page, base);
  return { page, offsets };
}

/** How many handles the page keeps in IndexedDB. */
function handlesKept(page: Page): Promise<number> {
  return page.evaluate(
    () =>
      new Promise<number>((resolve, reject) => {
        const open = indexedDB.open("ferry-handles");
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          // No store yet: nothing kept.
          if (!open.result.objectStoreNames.contains("handles")) return resolve(0);
          const count = open.result.transaction("handles").objectStore("handles").count();
          count.onsuccess = () => resolve(count.result);
          count.onerror = () => reject(count.error);
        };
      }),
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
    let offsets: number[];
    ({ page, offsets } = await reopen(ctx, server.base));
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
    await expect.poll(() => handlesKept(page)).toBe(0);
    console.log(`resumed after a browser restart at ${(offsets[0] / MIB).toFixed(1)} MiB of ${(size / MIB).toFixed(0)} MiB`);
  } finally {
    await ctx.close();
    await server.kill();
  }
});

/** Drops, on the drop zone, the private file system's file `alone` and
 * folder `folder` as a desktop drop gives them: items whose
 * `getAsFileSystemHandle` answers their handles, and whose
 * `webkitGetAsEntry` answers entries to walk (a page cannot make a drop
 * of a folder itself, so both answer from the private file system). */
async function dropPrivate(page: Page, alone: string, folder: string) {
  await page.evaluate(
    async ({ alone, folder }) => {
      const root = await navigator.storage.getDirectory();
      const entryOf = (handle: any, path: string): any =>
        handle.kind === "directory"
          ? {
              isDirectory: true, isFile: false, name: handle.name, fullPath: path,
              createReader: () => {
                let read = false;
                return {
                  readEntries: (ok: (e: any[]) => void, fail: (e: any) => void) => {
                    if (read) return ok([]);
                    read = true;
                    (async () => {
                      const found = [];
                      for await (const child of handle.values()) found.push(entryOf(child, `${path}/${child.name}`));
                      return found;
                    })().then(ok, fail);
                  },
                };
              },
            }
          : {
              isDirectory: false, isFile: true, name: handle.name, fullPath: path,
              file: (ok: (f: File) => void, fail: (e: any) => void) => handle.getFile().then(ok, fail),
            };
      const handles: Record<string, any> = {
        [alone]: await root.getFileHandle(alone),
        [folder]: await root.getDirectoryHandle(folder),
      };
      const proto = DataTransferItem.prototype as any;
      proto.getAsFileSystemHandle = function () {
        return Promise.resolve(handles[this.getAsFile().name]);
      };
      proto.webkitGetAsEntry = function () {
        const name = this.getAsFile().name;
        return entryOf(handles[name], `/${name}`);
      };
      const dt = new DataTransfer();
      dt.items.add(await handles[alone].getFile());
      dt.items.add(new File([], folder));
      const zone = document.querySelector('[data-testid="drop-zone"]')!;
      zone.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    },
    { alone, folder },
  );
}

test("after a browser restart, files dropped alone and in a folder resume without choosing them again", async ({}, testInfo) => {
  test.setTimeout(150_000);
  const server = new Server(3129, tempDir("restart-drop-"));
  await server.start();
  const profile = tempDir("profile-");
  const launch = () => chromium.launchPersistentContext(profile, { ...(testInfo.project.use.launchOptions ?? {}) });
  let ctx: BrowserContext = await launch();
  const size = 12 * MIB + 3;
  const alone = "dropped-alone.bin";
  const inner = "dropped-folder/day 1/inner.bin";
  try {
    let page = await ctx.newPage();
    await openPage(page, server.base);
    const shas: Record<string, string> = {
      [alone]: await writePrivateFile(page, size, alone, 11),
      ["inner.bin"]: await writePrivateFile(page, size, inner, 12),
    };
    await setSetting(page, "setting-chunk", 1);
    await setSetting(page, "setting-instant", 0);
    const cdp = await ctx.newCDPSession(page);
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 3 * MIB,
    });
    await dropPrivate(page, alone, "dropped-folder");
    await expect(row(page, "inner.bin").getByTestId("folder")).toHaveText("dropped-folder/day 1/");
    const percent = async (p: Page, name: string) =>
      parseInt((await row(p, name).getByTestId("percent").textContent()) ?? "0");
    // Both on their way (two files at once), both kept by handle.
    for (const name of Object.keys(shas)) {
      await expect.poll(() => percent(page, name), { timeout: 60_000 }).toBeGreaterThanOrEqual(10);
    }
    expect(await handlesKept(page)).toBe(2);
    // A handle of a file never created (dropped as the page closed): the
    // next start forgets it.
    await page.evaluate(
      (name) =>
        new Promise<void>((resolve, reject) => {
          const open = indexedDB.open("ferry-handles");
          open.onerror = () => reject(open.error);
          open.onsuccess = async () => {
            const handle = await (await navigator.storage.getDirectory()).getFileHandle(name);
            const tx = open.result.transaction("handles", "readwrite");
            tx.objectStore("handles").put(handle, "1|2|never-created.bin");
            tx.oncomplete = () => resolve();
            tx.onerror = () => reject(tx.error);
          };
        }),
      alone,
    );
    expect(await handlesKept(page)).toBe(3);

    await ctx.close();
    ctx = await launch();
    let offsets: number[];
    ({ page, offsets } = await reopen(ctx, server.base));
    for (const name of Object.keys(shas)) {
      const item = page.locator(`[data-testid="interrupted-item"][data-name="${name}"]`);
      await expect(item).toBeVisible();
      await item.getByTestId("interrupted-resume").click();
    }
    for (const [name, sha] of Object.entries(shas)) {
      const r = row(page, name);
      await expect(r).toHaveAttribute("data-status", "done", { timeout: 90_000 });
      await expect(r.getByTestId("sha256").locator("code")).toHaveText(sha);
      const copy = await (await fetch(server.base + (await r.getAttribute("data-url"))!)).arrayBuffer();
      expect(crypto.createHash("sha256").update(Buffer.from(copy)).digest("hex")).toBe(sha);
    }
    // The folder's file came back with its path.
    await expect(row(page, "inner.bin").getByTestId("folder")).toHaveText("dropped-folder/day 1/");
    // Neither started over: every PATCH after the restart went on from
    // what the server had.
    expect(offsets.length).toBeGreaterThan(0);
    expect(Math.min(...offsets)).toBeGreaterThan(0);
    expect(await uploadsCounted(server.base, "created")).toBe(2);
    await expect.poll(() => handlesKept(page)).toBe(0);
  } finally {
    await ctx.close();
    await server.kill();
  }
});
