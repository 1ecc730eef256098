// Ferry's SHA-256 of a file, away from the page's main thread, so a large
// file is hashed while its bytes are sent and the page keeps answering.
// The page posts { file }; the worker answers { hashed } as it goes, then
// { sha256 } (lowercase hex), or { error } when the file cannot be read.
// It runs the page's own WebAssembly (Sha256Stream), loaded from beside
// this script, so the hash is the same code the page would run itself.
import init, { Sha256Stream } from "./pkg/ferry.js";

const ready = init({ module_or_path: new URL("./pkg/ferry.wasm", import.meta.url) });
// Read in slices: memory stays at two slices whatever the file's size.
const SLICE = 4 * 1024 * 1024;

self.onmessage = async ({ data: { file } }) => {
  try {
    await ready;
    const hasher = new Sha256Stream();
    const read = (at) => file.slice(at, Math.min(at + SLICE, file.size)).arrayBuffer();
    // The next slice is read while this one is hashed.
    let next = file.size > 0 ? read(0) : null;
    for (let at = 0; at < file.size; ) {
      const bytes = new Uint8Array(await next);
      if (bytes.length === 0) throw new Error("the file could not be read to its end");
      at += bytes.length;
      next = at < file.size ? read(at) : null;
      hasher.update(bytes);
      self.postMessage({ hashed: at });
    }
    self.postMessage({ sha256: hasher.finish() });
  } catch (e) {
    self.postMessage({ error: String(e) });
  }
};
