import { defineConfig } from "@playwright/test";

// Ferry's browser tests run in Debian's Chromium (/usr/bin/chromium, installed
// by `make test`); Playwright's own browser download cannot work here.
// scripts/e2e.sh (make e2e) starts the server on 127.0.0.1:3000 before running them.
export default defineConfig({
  testDir: "./tests",
  globalTeardown: "./teardown.ts",
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL: process.env.FERRY_BASE_URL ?? "http://127.0.0.1:3000",
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
      ],
    },
  },
  projects: [{ name: "chromium" }],
});
