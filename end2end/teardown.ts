// Removes the files the browser tests made (helpers.ts TEMP_ROOT).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export default function teardown() {
  fs.rmSync(path.join(os.tmpdir(), "ferry-e2e"), { recursive: true, force: true });
}
