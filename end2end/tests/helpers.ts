// Shared helpers for Ferry's browser tests: test files on disk, a Ferry
// server of the test's own (for restarts and other limits), hashing.
import { expect, Page, APIRequestContext } from "@playwright/test";
import { spawn, ChildProcess } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";

export const MIB = 1024 * 1024;

/** Where the tests' files go; removed after the run (teardown.ts). */
export const TEMP_ROOT = path.join(os.tmpdir(), "ferry-e2e");

/** A folder of the test's own, under TEMP_ROOT. */
export function tempDir(prefix = "run-"): string {
  fs.mkdirSync(TEMP_ROOT, { recursive: true });
  return fs.mkdtempSync(path.join(TEMP_ROOT, prefix));
}

/** Deterministic pseudo-random bytes. */
export function bytes(n: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = (0x9e3779b9 ^ seed) >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Writes a file of `n` bytes under `dir`; answers its path. */
export function makeFile(dir: string, name: string, n: number, seed: number): string {
  const p = path.join(dir, name);
  // Large files in 8 MiB pieces, to keep memory flat.
  const fd = fs.openSync(p, "w");
  for (let at = 0; at < n; at += 8 * MIB) {
    fs.writeSync(fd, bytes(Math.min(8 * MIB, n - at), seed + at / (8 * MIB)));
  }
  fs.closeSync(fd);
  return p;
}

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A real PNG image of `w` x `h` pixels, written under `dir`. */
export function makePng(dir: string, name: string, w = 64, h = 48): string {
  const rows = Buffer.alloc(h * (1 + w * 3));
  for (let y = 0; y < h; y++) {
    rows[y * (1 + w * 3)] = 0;
    for (let x = 0; x < w; x++) {
      const o = y * (1 + w * 3) + 1 + x * 3;
      rows[o] = (x * 4) & 255; rows[o + 1] = (y * 5) & 255; rows[o + 2] = 160;
    }
  }
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(rows)), chunk("IEND", Buffer.alloc(0)),
  ]);
  const p = path.join(dir, name);
  fs.writeFileSync(p, png);
  return p;
}

export function sha256(buf: Buffer): string {
  return crypto.createHash("sha256").update(buf).digest("hex");
}

export function sha256File(p: string): string {
  return sha256(fs.readFileSync(p));
}

/** Opens the page and waits until it is hydrated. */
export async function openPage(page: Page, base = "") {
  await page.goto(base + "/");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
}

/** Sets a numeric setting in the settings panel. */
export async function setSetting(page: Page, testid: string, value: number) {
  const panel = page.locator("details.settings");
  if (!(await panel.evaluate((d) => (d as HTMLDetailsElement).open))) {
    await panel.locator("summary").click();
  }
  const input = page.getByTestId(testid);
  await input.fill(String(value));
  await input.dispatchEvent("change");
}

export function row(page: Page, name: string) {
  return page.locator(`[data-testid="file-row"][data-name="${name}"]`);
}

/** Downloads an upload through the API and checks it equals a file. */
export async function expectServerCopy(request: APIRequestContext, url: string, file: string, base = "") {
  expect(url).toMatch(/\/files\//);
  const resp = await request.get(base + url);
  expect(resp.status()).toBe(200);
  expect(sha256(await resp.body())).toBe(sha256File(file));
}

/** A counter of uploads (`ferry_uploads_total{event}`) from a server's
 * /metrics: created, completed, ... */
export async function uploadsCounted(base: string, event: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`ferry_uploads_total{event="${event}"}`));
  return line ? Number(line.split(" ").pop()) : 0;
}

/** The tus HEAD status of an upload URL. */
export async function headStatus(request: APIRequestContext, url: string, base = ""): Promise<number> {
  const r = await request.head(base + url, { headers: { "Tus-Resumable": "1.0.0" } });
  return r.status();
}

/** A Ferry server of the test's own, from the binary scripts/e2e.sh serves ($FERRY_BIN). */
export class Server {
  proc: ChildProcess | null = null;
  constructor(public port: number, public dataDir: string, public args: string[] = []) {}

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    const bin = process.env.FERRY_BIN ?? path.resolve(__dirname, "../../target/release/ferry");
    this.proc = spawn(bin, [
      "--addr", `127.0.0.1:${this.port}`,
      "--data-dir", this.dataDir,
      "--site-root", path.resolve(__dirname, "../../target/site"),
      ...this.args,
    ], { stdio: "ignore" });
    for (let i = 0; i < 200; i++) {
      try {
        const r = await fetch(this.base + "/healthz");
        if (r.ok) return;
      } catch {}
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("server did not start");
  }

  /** Kills the server with SIGKILL and waits for it to be gone. */
  async kill() {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await gone;
  }
}
