import { defineConfig } from "@playwright/test";

// Ferry's browser tests run in Debian's Chromium (/usr/bin/chromium, installed
// by `make test`); Playwright's own browser download cannot work here.
// scripts/e2e.sh (make e2e) starts the server on 127.0.0.1:3000 before running them.
export default defineConfig({
  testDir: "./tests",
  globalTeardown: "./teardown.ts",
  timeout: 60_000,
  expect: { timeout: 15_000 },
  // Two spec files at a time (the tests of one file run in order, in one
  // worker): most of them wait on the network, a server or a timer as much
  // as they compute. Every test that starts a server of its own gives it a
  // port of its own.
  fullyParallel: false,
  workers: 2,
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
  projects: [
    { name: "chromium", testIgnore: /many\.spec\.ts/ },
    // The ten-thousand-file test is bound by the CPU: beside another test
    // both slow down. It runs alone, after the others.
    { name: "many", testMatch: /many\.spec\.ts/, dependencies: ["chromium"] },
  ],
});
