// Ferry's uploader embedded in a page of another origin (public/embed.js,
// examples/embed/index.html): the documented one-line snippet, events the
// host page hears, byte-identical copies, resume after a reload, a hostile
// host stylesheet, tokens as owners, and an origin the server does not
// allow.
import { test, expect, Page } from "@playwright/test";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { AddressInfo } from "node:net";
import { MIB, Server, makeFile, makePng, sha256File, tempDir } from "./helpers";

const EXAMPLE = path.resolve(__dirname, "../../examples/embed/index.html");

type Variant = { token?: string; autostart?: boolean; hostileStyle?: boolean; attrs?: string; second?: boolean };

const EMBED_SECRET = "embed-secret-for-tests";

/** An embed token for `owner`, as a host page's back end mints one (README, "Embedding"). */
function embedToken(owner: string, ttlSecs = 3600): string {
  const expires = Math.floor(Date.now() / 1000) + ttlSecs;
  const mac = crypto.createHmac("sha256", EMBED_SECRET).update(`ferry-embed-token:${owner}.${expires}`).digest("hex");
  return `fe1.${owner}.${expires}.${mac}`;
}

/** The example page, pointed at `ferry`, changed as the variant says. */
function hostPage(ferry: string, v: Variant): string {
  let html = fs.readFileSync(EXAMPLE, "utf8").replaceAll("http://127.0.0.1:3000", ferry);
  const attrs = [
    v.token ? `token="${v.token}"` : "",
    v.autostart === false ? `autostart="false"` : "",
    v.attrs ?? "",
  ].join(" ");
  html = html.replace('<ferry-upload id="uploader" chunk-mib="8">', `<ferry-upload id="uploader" ${attrs}>`);
  if (v.second) {
    html = html.replace('<ul id="attachments">', '<ferry-upload id="second" show-uploaded="false"></ferry-upload><ul id="attachments">');
  }
  if (v.hostileStyle) {
    // Everything a careless or hostile site's stylesheet can throw at an
    // element it does not own, and a class name Ferry uses too.
    html = html.replace("</head>", `<style>
      * { font-size: 3px !important; color: transparent !important; letter-spacing: 9px !important;
          visibility: hidden !important; cursor: none !important; line-height: 0 !important; }
      html, body, h1, form, p, ul, li, label, input, .card, #status, #attachments { visibility: visible !important; }
      div, section, label, input, button, progress, li, span { display: none !important; all: unset !important; }
      ferry-upload { display: block !important; }
      .card { background: rgb(255, 0, 0); }
    </style></head>`).replace("<h1>", '<aside class="card" id="host-card">the host\'s own card</aside><h1>');
  }
  return html;
}

/** A web server for host pages on an origin of its own: `/?…` is the example page. */
async function hostServer(ferry: string, variants: Record<string, Variant>) {
  const server = http.createServer((req, res) => {
    const name = (req.url ?? "/").split("?")[0].slice(1) || "plain";
    const v = variants[name];
    if (!v) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(hostPage(ferry, v));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

/** A free port for a Ferry server. */
async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const widget = (page: Page) => page.locator("ferry-upload#uploader");
const input = (page: Page) => widget(page).locator("#file-input");
const fileRow = (page: Page, name: string) =>
  widget(page).locator(`[data-testid="file-row"][data-name="${name}"]`);
const events = (page: Page, type: string) =>
  page.evaluate((t) => (window as any).ferryEvents.filter((e: any) => e.type === t).map((e: any) => e.detail), type);

let ferry: Server;
const tokens = { alice: embedToken("alice"), bob: embedToken("bob") };
let host: Awaited<ReturnType<typeof hostServer>>;

test.beforeAll(async () => {
  // The host page's origin is allowed; its port is known once it listens,
  // so it listens first, on a server pointed at the Ferry port to come.
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  host = await hostServer(base, {
    plain: {},
    small: { attrs: 'chunk-mib="1"' },
    manual: { autostart: false, attrs: 'chunk-mib="1"' },
    hostile: { hostileStyle: true },
    alice: { token: tokens.alice, attrs: 'show-uploaded="true"' },
    bob: { token: tokens.bob, attrs: 'show-uploaded="true"' },
    expired: { token: embedToken("carol", -60) },
    two: { second: true },
  });
  // The same host page as another site (localhost is not 127.0.0.1's
  // site), where the browser withholds Ferry's cookie.
  ferry = new Server(port, tempDir("embed-data-"), [
    "--cors-origin", `${host.origin},${host.origin.replace("127.0.0.1", "localhost")}`,
    "--embed-secret", EMBED_SECRET,
  ]);
  await ferry.start();
});

test.afterAll(async () => {
  await ferry?.kill();
  await host?.close();
});

async function open(page: Page, variant = "plain", origin = host.origin) {
  await page.goto(`${origin}/${variant === "plain" ? "" : variant}`);
  await expect(widget(page).locator('[data-testid="ferry-embed"]')).toBeVisible();
  await expect.poll(() => events(page, "ready").then((r) => r.length)).toBe(1);
}

test("a page on another origin embeds the uploader with one line: events, hidden inputs, identical copies", async ({ page }) => {
  test.setTimeout(120_000);
  const dir = tempDir();
  const files = [
    makeFile(dir, "many-chunks.bin", 20 * MIB + 3, 41),
    makeFile(dir, "notes.txt", 2000, 42),
    makePng(dir, "picture.png"),
  ];
  // How loading the widget treats the host page: printed, not asserted
  // (a shared machine's timings are not a test's business).
  await page.addInitScript(() => {
    const w = window as any;
    w.longTasks = [];
    new PerformanceObserver((l) => l.getEntries().forEach((e) => w.longTasks.push(e.duration)))
      .observe({ type: "longtask", buffered: true });
    document.addEventListener("ferry:ready", () => (w.readyAt = performance.now()));
  });
  // Small chunks: the large file takes many requests.
  await open(page, "small");
  const load = await page.evaluate(() => {
    const w = window as any;
    return { ready: Math.round(w.readyAt), longest: Math.round(Math.max(0, ...w.longTasks)), long: w.longTasks.length };
  });
  console.log(`embed: ready ${load.ready} ms after navigation; longest main-thread task ${load.longest} ms; ` +
    `${load.long} tasks over 50 ms`);
  const patches: number[] = [];
  page.on("request", (r) => {
    if (r.method() === "PATCH" && r.url().startsWith(ferry.base)) patches.push(Number(r.headers()["upload-offset"]));
  });
  // The large file first; the others join while it is on its way (each
  // file's events keep coming whatever joins later).
  await input(page).setInputFiles(files[0]);
  await expect.poll(() => events(page, "progress").then((p) => p.some((e: any) => e.bytesSent > 0))).toBe(true);
  await input(page).setInputFiles(files.slice(1));
  for (const f of files) {
    await expect(fileRow(page, path.basename(f))).toHaveAttribute("data-status", /done|already-uploaded/, { timeout: 90_000 });
  }
  // Once per settled batch: the whole batch, or, when the large file
  // ended before the others were chosen (a loaded machine), first it alone.
  await expect.poll(() => events(page, "all-done").then((e) => e.at(-1)?.files.length), { timeout: 15_000 }).toBe(3);
  const settled = (await events(page, "all-done")).map((e: any) => e.files.length);
  expect([[3], [1, 3]]).toContainEqual(settled);

  const added = await events(page, "file-added");
  expect(added.map((d: any) => d.name).sort()).toEqual(["many-chunks.bin", "notes.txt", "picture.png"]);
  const progress = await events(page, "progress");
  expect(progress.filter((p: any) => p.name === "many-chunks.bin").length).toBeGreaterThan(10);
  const last = progress[progress.length - 1];
  expect(last.batchSent).toBe(last.batchTotal);
  const complete = await events(page, "file-complete");
  expect(complete.length).toBe(3);
  for (const f of files) {
    const c = complete.find((d: any) => d.name === path.basename(f));
    expect(c, path.basename(f)).toBeTruthy();
    expect(c.url.startsWith(`${ferry.base}/files/`)).toBe(true);
    expect(c.sha256).toBe(sha256File(f));
    expect(c.size).toBe(fs.statSync(f).size);
    // The copy on the server, fetched by the same browser (its owner).
    const body = await page.request.get(c.url);
    expect(body.status()).toBe(200);
    expect(Buffer.from(await body.body()).equals(fs.readFileSync(f))).toBe(true);
  }
  expect(patches.length).toBeGreaterThan(20);
  const allDone = (await events(page, "all-done")).at(-1);
  expect(allDone.files.map((f: any) => f.status)).toEqual(["done", "done", "done"]);
  // The host page's form got what it asked for.
  const hidden = await page.locator('#application input[name="attachment_sha256"]').evaluateAll((els) =>
    els.map((e) => (e as HTMLInputElement).value).sort());
  expect(hidden).toEqual(files.map(sha256File).sort());
  await expect(page.locator("#submit")).toBeEnabled();
  // The finished list inside the widget links to the server, not the host.
  const link = widget(page).locator('[data-testid="uploaded-item"] a[download]').first();
  await expect(link).toHaveAttribute("href", new RegExp(`^${ferry.base}/files/`));
});

/**
 * Sends `name` on a 4 MB/s uplink, reloads the host page once more than
 * `cutAt` bytes have left, chooses the file again, and checks the widget
 * listed it as interrupted, resumed past 4 MiB, and ended with the server's
 * SHA-256 of identical bytes.
 */
async function resumeAfterReload(page: Page, name: string, size: number, seed: number, cutAt: number, origin = host.origin) {
  const file = makeFile(tempDir(), name, size, seed);
  await open(page, "small", origin);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 4 * MIB,
  });
  await input(page).setInputFiles(file);
  await expect.poll(async () => (await events(page, "progress"))
    .filter((p: any) => p.name === name)
    .reduce((m: number, p: any) => Math.max(m, p.bytesSent), 0), { timeout: 60_000 })
    .toBeGreaterThan(cutAt);
  await page.reload();
  await expect.poll(() => events(page, "ready").then((r) => r.length)).toBe(1);
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
  });
  // The widget remembers the upload in the host page's storage.
  await expect(widget(page).locator(`[data-testid="interrupted-item"][data-name="${name}"]`)).toBeVisible();
  const offsets: number[] = [];
  page.on("request", (r) => {
    if (r.method() === "PATCH" && r.url().startsWith(ferry.base)) offsets.push(Number(r.headers()["upload-offset"]));
  });
  await input(page).setInputFiles(file);
  await expect(fileRow(page, name)).toHaveAttribute("data-status", "done", { timeout: 90_000 });
  expect(offsets[0]).toBeGreaterThan(4 * MIB);
  await expect.poll(() => events(page, "file-complete").then((c) => c.length), { timeout: 15_000 }).toBe(1);
  const [done] = await events(page, "file-complete");
  expect(done.sha256).toBe(sha256File(file));
  const body = await page.request.get(done.url);
  expect(Buffer.from(await body.body()).equals(fs.readFileSync(file))).toBe(true);
}

test("the embedded uploader resumes after a reload, sending only the rest", async ({ page }) => {
  test.setTimeout(120_000);
  await resumeAfterReload(page, "resume-embedded.bin", 24 * MIB + 7, 43, 6 * MIB);
});

test("on another site, without Ferry's cookie, an upload still resumes after a reload", async ({ page }) => {
  test.setTimeout(120_000);
  // Verified all the same: the upload's own HEAD gives its SHA-256.
  await resumeAfterReload(page, "cookieless.bin", 16 * MIB + 9, 51, 5 * MIB,
    host.origin.replace("127.0.0.1", "localhost"));
});

test("a hostile host stylesheet neither hides nor breaks the widget, and the widget's styles stay inside", async ({ page }) => {
  const dir = tempDir();
  const file = makeFile(dir, "styled.bin", 300_000, 44);
  await open(page, "hostile");
  const zone = widget(page).locator('[data-testid="drop-zone"]');
  await expect(zone).toBeVisible();
  const look = await zone.evaluate((el) => {
    const s = getComputedStyle(el);
    return { font: parseFloat(s.fontSize), visibility: s.visibility, color: s.color, border: s.borderTopStyle };
  });
  expect(look.font).toBeGreaterThan(12);
  expect(look.visibility).toBe("visible");
  expect(look.color).not.toBe("rgba(0, 0, 0, 0)");
  expect(look.border).toBe("dashed");
  // Themed by the host page through --ferry-accent (the example's purple).
  const card = widget(page).locator(".card").first();
  expect(await card.evaluate((el) => getComputedStyle(el).borderRadius)).toBe("6px");
  // Ferry's `.card` rule does not reach the host page's own `.card`.
  const hostCard = page.locator("#host-card");
  const hostLook = await hostCard.evaluate((el) => {
    const s = getComputedStyle(el);
    return { radius: s.borderRadius, background: s.backgroundColor };
  });
  expect(hostLook).toEqual({ radius: "0px", background: "rgb(255, 0, 0)" });
  await input(page).setInputFiles(file);
  await expect(fileRow(page, "styled.bin")).toHaveAttribute("data-status", "done", { timeout: 30_000 });
  await expect(fileRow(page, "styled.bin")).toBeVisible();
  const [done] = await events(page, "file-complete");
  expect(done.sha256).toBe(sha256File(file));
});

test("with autostart off, files wait for start(); list(), pause() and resume() drive them", async ({ page }) => {
  test.setTimeout(120_000);
  const dir = tempDir();
  const files = [makeFile(dir, "held-1.bin", 16 * MIB, 45), makeFile(dir, "held-2.bin", 1000, 46)];
  await open(page, "manual");
  await input(page).setInputFiles(files);
  await expect(fileRow(page, "held-1.bin")).toHaveAttribute("data-status", "waiting");
  await page.waitForTimeout(800);
  const list = () => widget(page).evaluate((el: any) => el.list());
  expect((await list()).map((f: any) => [f.name, f.status, f.bytesSent])).toEqual([
    ["held-1.bin", "waiting", 0],
    ["held-2.bin", "waiting", 0],
  ]);
  expect(await events(page, "progress").then((p) => p.filter((e: any) => e.bytesSent > 0).length)).toBe(0);
  // A slow uplink, so that there is time to pause.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 2 * MIB,
  });
  await widget(page).evaluate((el: any) => el.start());
  await expect(fileRow(page, "held-2.bin")).toHaveAttribute("data-status", "done", { timeout: 30_000 });
  await expect.poll(async () => (await list())[0].bytesSent, { timeout: 30_000 }).toBeGreaterThan(MIB);
  await widget(page).evaluate((el: any) => el.pause());
  await expect(fileRow(page, "held-1.bin")).toHaveAttribute("data-status", "paused");
  const paused = (await list())[0];
  expect(paused.status).toBe("paused");
  expect(paused.bytesSent).toBeLessThan(16 * MIB);
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
  });
  await widget(page).evaluate((el: any) => el.resume());
  await expect(fileRow(page, "held-1.bin")).toHaveAttribute("data-status", "done", { timeout: 60_000 });
  await expect.poll(() => events(page, "all-done").then((e) => e.length), { timeout: 15_000 }).toBe(1);
  const listed = await list();
  expect(listed.map((f: any) => [f.status, f.sha256])).toEqual(files.map((f) => ["done", sha256File(f)]));
});

test("a token given by the host page names the owner: each sees only its own uploads", async ({ browser }) => {
  const dir = tempDir();
  const file = makeFile(dir, "alice-only.bin", 50_000, 47);
  // One browser profile for both: only the token tells them apart.
  const context = await browser.newContext();
  const alice = await context.newPage();
  await open(alice, "alice");
  await input(alice).setInputFiles(file);
  await expect(fileRow(alice, "alice-only.bin")).toHaveAttribute("data-status", "done", { timeout: 30_000 });
  await expect(widget(alice).locator('[data-testid="uploaded-item"][data-name="alice-only.bin"]')).toBeVisible();
  const bob = await context.newPage();
  await open(bob, "bob");
  await expect(widget(bob).locator('[data-testid="server-status"]')).not.toBeEmpty();
  await bob.waitForTimeout(1000);
  await expect(widget(bob).locator('[data-testid="uploaded-item"]')).toHaveCount(0);
  // The server agrees: Alice's token lists it, Bob's does not, and
  // neither does the browser's own session (the token was sent, not the
  // cookie's owner).
  const names = async (token?: string) => {
    const r = await context.request.post(`${ferry.base}/api/list_uploads`, {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      form: {},
    });
    expect(r.status()).toBe(200);
    return (await r.json()).uploads.map((u: any) => u.name);
  };
  expect(await names(tokens.alice)).toEqual(["alice-only.bin"]);
  expect(await names(embedToken("alice"))).toEqual(["alice-only.bin"]);
  expect(await names(tokens.bob)).toEqual([]);
  expect(await names()).toEqual([]);
  // The token left the page's DOM once the widget read it.
  expect(await widget(alice).getAttribute("token")).toBeNull();
  await context.close();
});

test("an expired embed token: the widget says so and sends nothing", async ({ page }) => {
  const dir = tempDir();
  const file = makeFile(dir, "too-late.bin", 10_000, 48);
  await open(page, "expired");
  await input(page).setInputFiles(file);
  await expect.poll(() => events(page, "error").then((e) => e.length), { timeout: 30_000 }).toBe(1);
  const [err] = await events(page, "error");
  expect(err.name).toBe("too-late.bin");
  expect(err.message).toContain("expired");
  await expect(fileRow(page, "too-late.bin")).toHaveAttribute("data-status", "failed");
});

test("two widgets on one page keep their files apart", async ({ page }) => {
  const dir = tempDir();
  const first = makeFile(dir, "first.bin", 3 * MIB, 49);
  const second = makeFile(dir, "second.bin", 2 * MIB + 1, 50);
  await open(page, "two");
  const other = page.locator("#second");
  await expect(other.locator('[data-testid="ferry-embed"]')).toBeVisible();
  await page.locator("#uploader #file-input").setInputFiles(first);
  await other.locator("#file-input").setInputFiles(second);
  await expect(page.locator('#uploader [data-testid="file-row"][data-name="first.bin"]'))
    .toHaveAttribute("data-status", "done", { timeout: 30_000 });
  await expect(other.locator('[data-testid="file-row"][data-name="second.bin"]'))
    .toHaveAttribute("data-status", "done", { timeout: 30_000 });
  const lists = await page.evaluate(() =>
    ["uploader", "second"].map((id) => (document.getElementById(id) as any).list()));
  await expect.poll(async () => (await page.evaluate(() =>
    ["uploader", "second"].map((id) => (document.getElementById(id) as any).list()[0].sha256))))
    .toEqual([sha256File(first), sha256File(second)]);
  expect(lists.map((l: any[]) => l.map((f) => f.name))).toEqual([["first.bin"], ["second.bin"]]);
  for (const [f, list] of [[first, lists[0]], [second, lists[1]]] as const) {
    const body = await page.request.get(list[0].url);
    expect(Buffer.from(await body.body()).equals(fs.readFileSync(f))).toBe(true);
  }
});

test("a page whose origin the server does not allow gets no uploader", async ({ page }) => {
  // The same page on an origin missing from --cors-origin.
  const stranger = await hostServer(ferry.base, { plain: {} });
  try {
    const failed: string[] = [];
    page.on("requestfailed", (r) => failed.push(r.url()));
    await page.goto(`${stranger.origin}/`);
    await page.waitForTimeout(1500);
    expect(await page.evaluate(() => customElements.get("ferry-upload") === undefined)).toBe(true);
    expect(failed.some((u) => u.endsWith("/embed.js"))).toBe(true);
    // Nor may its scripts call the server's functions with the browser's cookie.
    const status = await page.evaluate(async (base) => {
      try {
        const r = await fetch(`${base}/api/list_uploads`, { method: "POST", credentials: "include" });
        return r.status;
      } catch {
        return "blocked";
      }
    }, ferry.base);
    expect(status).toBe("blocked");
  } finally {
    await stranger.close();
  }
});
