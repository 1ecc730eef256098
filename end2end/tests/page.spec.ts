import { test, expect } from "@playwright/test";

test("the page is a working form before any script runs", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto("/");
  await expect(page).toHaveTitle("Ferry");
  const form = page.locator("form#upload-form");
  await expect(form).toBeVisible();
  await expect(form).toHaveAttribute("method", "post");
  await expect(form).toHaveAttribute("enctype", "multipart/form-data");
  const input = form.locator('input[type="file"]');
  await expect(input).toHaveAttribute("multiple", "");
  await expect(page.locator("body")).not.toHaveAttribute("data-hydrated", "true");
  await context.close();
});

test("the page hydrates and a server function round-trips", async ({ page }) => {
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(err.message));
  const serverFn = page.waitForResponse(
    (r) => r.url().includes("/api/describe_server") && r.request().method() === "POST",
  );
  await page.goto("/");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  const response = await serverFn;
  expect(response.status()).toBe(200);
  const info = await response.json();
  expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
  await expect(page.getByTestId("server-status")).toHaveText(`Connected to Ferry ${info.version}`);
  expect(errors).toEqual([]);
});

test("health and the WebAssembly bundle are served", async ({ request }) => {
  const health = await request.get("/healthz");
  expect(health.status()).toBe(200);
  expect(await health.json()).toMatchObject({ status: "ok" });
  const wasm = await request.get("/pkg/ferry.wasm");
  expect(wasm.status()).toBe(200);
  expect(wasm.headers()["content-type"]).toBe("application/wasm");
  const bytes = await wasm.body();
  expect(bytes.subarray(0, 4).toString("latin1")).toBe("\0asm");
});
