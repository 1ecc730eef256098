// A large file sent as several parts at once and joined on the server (tus
// concatenation): the parts travel side by side, the joined file is
// byte-identical and verified, the parts are gone afterwards, the list of
// uploads shows one file, and a reload mid-way resumes every part where
// the server has it. A file that would not fit twice in the owner's share
// (parts and joined file) goes whole; a part gone when the parts are
// joined (expired while the others were on their way) is sent again alone.
import { test, expect, Page, Request } from "@playwright/test";
import * as path from "node:path";
import { MIB, Server, expectServerCopy, headStatus, makeFile, openPage, row, setSetting, sha256File, tempDir, uploadsCounted } from "./helpers";

/** The upload requests the page makes, and how many PATCHes were in the
 * air at once at most, by the browser's own timing of each (from when it
 * was issued to the end of its answer). */
function watch(page: Page) {
  const parts: string[] = [];
  const finals: string[] = [];
  const patches: { url: string; offset: number }[] = [];
  const flights: [number, number][] = [];
  page.on("request", (r: Request) => {
    if (!r.url().includes("/files")) return;
    const concat = r.headers()["upload-concat"] ?? "";
    if (r.method() === "POST" && concat === "partial") parts.push(r.url());
    if (r.method() === "POST" && concat.startsWith("final;")) finals.push(concat);
    if (r.method() === "PATCH") {
      patches.push({ url: new URL(r.url()).pathname, offset: Number(r.headers()["upload-offset"]) });
    }
  });
  page.on("requestfinished", (r: Request) => {
    if (r.method() !== "PATCH" || !r.url().includes("/files")) return;
    const t = r.timing();
    flights.push([t.startTime, t.startTime + t.responseEnd]);
  });
  const most = () => {
    const edges = flights.flatMap(([a, b]) => [[a, 1], [b, -1]] as [number, number][]);
    edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    let now = 0;
    let top = 0;
    for (const [, d] of edges) top = Math.max(top, (now += d));
    return top;
  };
  return { parts, finals, patches, most };
}

async function partsSetting(page: Page) {
  await setSetting(page, "setting-chunk", 1);
  await setSetting(page, "setting-instant", 0);
  await setSetting(page, "setting-streams", 4);
  await setSetting(page, "setting-streams-from", 8);
}

test("a large file goes as four parts at once, joined into one verified file", async ({ page, request }) => {
  test.setTimeout(120_000);
  const server = new Server(3125, tempDir("parts-"));
  await server.start();
  try {
    const dir = tempDir();
    const file = makeFile(dir, "parted.bin", 40 * MIB + 5, 51);
    const seen = watch(page);
    await openPage(page, server.base);
    await partsSetting(page);
    await page.setInputFiles("#file-input", [file]);
    const r = row(page, "parted.bin");
    await expect(r).toHaveAttribute("data-status", "done", { timeout: 90_000 });
    await expect(r.getByTestId("sha256").locator("code")).toHaveText(sha256File(file));
    await expect(r.getByTestId("percent")).toHaveText("100%");
    const url = (await r.getAttribute("data-url"))!;
    await expectServerCopy(request, url, file, server.base);

    // Four parts, sent side by side, joined by one request naming them in
    // order.
    expect(seen.parts).toHaveLength(4);
    expect(seen.most()).toBeGreaterThanOrEqual(2);
    expect(seen.most()).toBeLessThanOrEqual(6);
    expect(seen.finals).toHaveLength(1);
    const partUrls = seen.finals[0].slice("final;".length).split(" ");
    expect(partUrls).toHaveLength(4);
    // Each part's PATCHes start at 0 and never go back.
    for (const p of partUrls) {
      const offsets = seen.patches.filter((x) => x.url === p).map((x) => x.offset);
      expect(offsets[0]).toBe(0);
      expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
    }
    // The parts are deleted once joined; the list shows the file alone.
    for (const p of partUrls) await expect.poll(() => headStatus(request, p, server.base)).toBe(404);
    const listed = page.locator('[data-testid="uploaded-item"]');
    await expect(listed).toHaveCount(1);
    await expect(listed.first()).toHaveAttribute("data-name", "parted.bin");
    // Four parts and the file were created; one file was completed for
    // the person (the parts complete too, as uploads of their own).
    expect(await uploadsCounted(server.base, "created")).toBe(5);
    expect(await page.evaluate(() => localStorage.getItem("ferry.resume.v1"))).toBe("{}");
  } finally {
    await server.kill();
  }
});

test("after a reload, a file sent in parts resumes every part where the server has it", async ({ page, request }) => {
  test.setTimeout(120_000);
  const server = new Server(3126, tempDir("parts-reload-"));
  await server.start();
  try {
    const dir = tempDir();
    const size = 36 * MIB + 3;
    const file = makeFile(dir, "reloaded.bin", size, 52);
    const seen = watch(page);
    await openPage(page, server.base);
    await partsSetting(page);
    // A slow uplink, so that the reload comes mid-way.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 6 * MIB,
    });
    await page.setInputFiles("#file-input", [file]);
    await expect.poll(async () => parseInt((await row(page, "reloaded.bin").getByTestId("percent").textContent()) ?? "0"), { timeout: 60_000 })
      .toBeGreaterThanOrEqual(30);
    const remembered = JSON.parse((await page.evaluate(() => localStorage.getItem("ferry.resume.v1")))!);
    const entry = Object.values(remembered)[0] as { parts: string[] };
    expect(entry.parts).toHaveLength(4);
    await page.reload();
    await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
    });
    // The interrupted list names the file, with what the parts hold.
    const item = page.locator('[data-testid="interrupted-item"][data-name="reloaded.bin"]');
    await expect(item).toBeVisible();
    const partsBefore = seen.parts.length;
    const patchesBefore = seen.patches.length;
    await page.setInputFiles("#file-input", [file]);
    const r = row(page, "reloaded.bin");
    await expect(r).toHaveAttribute("data-status", "done", { timeout: 90_000 });
    await expectServerCopy(request, (await r.getAttribute("data-url"))!, file, server.base);
    await expect(r.getByTestId("sha256").locator("code")).toHaveText(sha256File(file));
    // No part was made again, and the parts went on from their offsets:
    // at least one resumed past its start.
    expect(seen.parts.length).toBe(partsBefore);
    const resumed = seen.patches.slice(patchesBefore);
    const firstPerPart = new Map<string, number>();
    for (const p of resumed) if (!firstPerPart.has(p.url)) firstPerPart.set(p.url, p.offset);
    expect([...firstPerPart.values()].some((o) => o > 0)).toBe(true);
    expect(seen.finals).toHaveLength(1);
    expect(await uploadsCounted(server.base, "created")).toBe(5);
    console.log(`parts resumed at ${[...firstPerPart.values()].map((o) => (o / MIB).toFixed(1)).join(", ")} MiB of ${path.basename(file)}`);
  } finally {
    await server.kill();
  }
});

test("a file that does not fit twice in the owner's share goes whole, and arrives", async ({ page, request }) => {
  test.setTimeout(120_000);
  // Joined, a file counts beside its parts until they are deleted: in
  // parts, this one would need 80 MiB of a 60 MiB share.
  const server = new Server(3130, tempDir("parts-room-"), ["--max-bytes-per-owner", "60MiB"]);
  await server.start();
  try {
    const file = makeFile(tempDir(), "roomy.bin", 40 * MIB, 53);
    const seen = watch(page);
    await openPage(page, server.base);
    await partsSetting(page);
    await page.setInputFiles("#file-input", [file]);
    const r = row(page, "roomy.bin");
    await expect(r).toHaveAttribute("data-status", "done", { timeout: 90_000 });
    await expect(r.getByTestId("verified")).toBeVisible();
    await expectServerCopy(request, (await r.getAttribute("data-url"))!, file, server.base);
    expect(seen.parts).toHaveLength(0);
    expect(seen.finals).toHaveLength(0);
    expect(await uploadsCounted(server.base, "created")).toBe(1);
  } finally {
    await server.kill();
  }
});

test("a part gone from the server when the parts are joined is sent again alone", async ({ page, request }) => {
  test.setTimeout(120_000);
  const server = new Server(3132, tempDir("parts-gone-"));
  await server.start();
  try {
    const file = makeFile(tempDir(), "gone-part.bin", 40 * MIB + 9, 55);
    const seen = watch(page);
    // As the first join leaves, its first part goes (as a part that
    // expired while the others were on their way).
    let deleted = "";
    await page.route("**/files/**", async (route) => {
      const concat = route.request().headers()["upload-concat"] ?? "";
      if (route.request().method() === "POST" && concat.startsWith("final;") && !deleted) {
        deleted = concat.slice("final;".length).split(" ")[0];
        const r = await request.delete(server.base + deleted, { headers: { "Tus-Resumable": "1.0.0" } });
        expect(r.status()).toBe(204);
      }
      await route.continue();
    });
    await openPage(page, server.base);
    await partsSetting(page);
    await page.setInputFiles("#file-input", [file]);
    const r = row(page, "gone-part.bin");
    await expect(r).toHaveAttribute("data-status", "done", { timeout: 90_000 });
    await expect(r.getByTestId("verified")).toBeVisible();
    await expectServerCopy(request, (await r.getAttribute("data-url"))!, file, server.base);
    expect(deleted).not.toBe("");
    // Two joins; the second names a new first part and the same three
    // others; only the new part's bytes went again.
    expect(seen.finals).toHaveLength(2);
    const [first, second] = seen.finals.map((f) => f.slice("final;".length).split(" "));
    expect(second[0]).not.toBe(first[0]);
    expect(second.slice(1)).toEqual(first.slice(1));
    expect(seen.parts).toHaveLength(5);
    const from = seen.patches.findIndex((p) => p.url === second[0]);
    expect(from).toBeGreaterThan(0);
    expect(seen.patches.slice(from).map((p) => p.url)).toEqual(seen.patches.slice(from).map(() => second[0]));
  } finally {
    await server.kill();
  }
});
