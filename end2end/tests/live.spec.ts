import { test, expect, Page } from "@playwright/test";
import { MIB, bytes, expectServerCopy, makeFile, openPage, row, setSetting, tempDir, sha256 } from "./helpers";

/** Uploads through the tus API with the page's own session, as a script would. */
async function scriptUpload(page: Page, name: string, data: Buffer, pauseAt: number) {
  const meta = `filename ${Buffer.from(name).toString("base64")}`;
  const created = await page.request.post("/files/", {
    headers: { "Tus-Resumable": "1.0.0", "Upload-Length": String(data.length), "Upload-Metadata": meta },
  });
  expect(created.status()).toBe(201);
  const url = created.headers()["location"];
  const patch = (from: number, to: number) =>
    page.request.patch(url, {
      headers: {
        "Tus-Resumable": "1.0.0",
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": String(from),
      },
      data: data.subarray(from, to),
    });
  expect((await patch(0, pauseAt)).status()).toBe(204);
  return { url, finish: async () => expect((await patch(pauseAt, data.length)).status()).toBe(204) };
}

async function expectLive(page: Page, transport: string) {
  const activity = page.getByTestId("activity");
  await expect(activity).toHaveAttribute("data-transport", transport);
  const data = bytes(2 * MIB, 80);
  const upload = await scriptUpload(page, "from-a-script.bin", data, MIB);
  const item = page.locator('[data-testid="activity-item"][data-name="from-a-script.bin"]');
  await expect(item).toHaveAttribute("data-state", "progress");
  await expect(item.getByTestId("activity-percent")).toHaveText("50%");
  await upload.finish();
  await expect(item).toHaveAttribute("data-state", "completed");
  // The finished list catches up without a reload.
  const listed = page.locator('[data-testid="uploaded-item"][data-name="from-a-script.bin"]');
  await expect(listed).toBeVisible();
  await expect(listed.getByTestId("uploaded-sha256")).toHaveText(sha256(data));
}

test("an upload made by a script shows up live on the open page (Server-Sent Events)", async ({ page }) => {
  await openPage(page);
  await expectLive(page, "sse");
});

test("without an event stream the page falls back to long polling by itself", async ({ page }) => {
  let refused = 0;
  await page.route("**/events", (route) => {
    refused++;
    return route.abort("connectionrefused");
  });
  await openPage(page);
  await expectLive(page, "poll");
  expect(refused).toBeGreaterThan(0);
});

test("an upload over the WebSocket transport is byte-identical", async ({ page, request }) => {
  const dir = tempDir();
  const file = makeFile(dir, "over-ws.bin", 12 * MIB + 5, 90);
  await openPage(page);
  await page.locator("details.settings summary").click();
  await page.getByTestId("setting-transport").selectOption("ws");
  await setSetting(page, "setting-instant", 0);
  const sockets: string[] = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  let patches = 0;
  page.on("request", (r) => { if (r.method() === "PATCH") patches++; });
  await page.setInputFiles("#file-input", file);
  await expect(row(page, "over-ws.bin")).toHaveAttribute("data-status", "done", { timeout: 60_000 });
  expect(sockets.some((u) => u.includes("/ws?offset="))).toBe(true);
  expect(patches).toBe(0);
  await expectServerCopy(request, (await row(page, "over-ws.bin").getAttribute("data-url"))!, file);
});

test("with JavaScript off, the form uploads several files", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const dir = tempDir();
  const a = makeFile(dir, "form-a.bin", 3 * MIB + 1, 91);
  const b = makeFile(dir, "form b.txt", 1000, 92);
  await page.goto("/");
  await page.setInputFiles("#file-input", [a, b]);
  await page.locator('#upload-form button[type="submit"]').click();
  await page.waitForURL("**/?uploaded=2");
  await expect(page.getByTestId("uploaded-notice")).toContainText("2");
  for (const [name, file] of [["form-a.bin", a], ["form b.txt", b]]) {
    const item = page.locator(`[data-testid="uploaded-item"][data-name="${name}"]`);
    await expect(item).toBeVisible();
    await expectServerCopy(context.request, (await item.getAttribute("data-url"))!, file);
  }
  await context.close();
});
