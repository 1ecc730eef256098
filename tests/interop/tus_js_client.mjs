// Drives tus-js-client (the tus project's own client, unmodified) against a
// Ferry server. Called by tests/it/interop.rs; prints one JSON line of results.
//
//   node tus_js_client.mjs <scenario> <endpoint> <file> [chunkSize]
//
// Scenarios: upload (a file stream in chunks), resume (abort part-way, then
// resume from the stored URL in a new Upload), parallel (three partial
// uploads concatenated), terminate (abort with termination), refused (an
// upload the server refuses: what the client reports).
//
// TUS_PROTOCOL=ietf-draft-03 or ietf-draft-05 speaks the IETF draft
// (interop versions 5 and 6) instead of tus 1.0.
import * as fs from "node:fs";
import * as path from "node:path";
import * as tus from "tus-js-client";

const [scenario, endpoint, file, chunkArg] = process.argv.slice(2);
const chunkSize = Number(chunkArg ?? 5 * 1024 * 1024);
const size = fs.statSync(file).size;
const metadata = { filename: path.basename(file), filetype: "application/octet-stream" };
// The draft's interop versions the server answered with (none for tus).
const interop = new Set();
const protocol = {
  ...(process.env.TUS_PROTOCOL ? { protocol: process.env.TUS_PROTOCOL } : {}),
  onAfterResponse: (_req, res) => {
    const v = res.getHeader("Upload-Draft-Interop-Version");
    if (v) interop.add(v);
  },
};

function upload(input, options) {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(input, {
      endpoint,
      chunkSize,
      metadata,
      ...protocol,
      retryDelays: [0, 200, 500],
      ...options,
      onError: reject,
      onSuccess: () => resolve(u),
    });
    options.start?.(u);
    u.start();
  });
}

async function head(url) {
  const r = await fetch(url, { method: "HEAD", headers: { "Tus-Resumable": "1.0.0" } });
  return { status: r.status, offset: Number(r.headers.get("upload-offset")) };
}

let result;
switch (scenario) {
  case "upload": {
    let patches = 0;
    const u = await upload(fs.createReadStream(file, { highWaterMark: 1 << 20 }), {
      uploadSize: size,
      onChunkComplete: () => patches++,
    });
    result = { url: u.url, patches };
    break;
  }
  case "resume": {
    // First attempt: stopped once 40 % has been accepted, as if the laptop
    // closed. The URL is all the second attempt knows.
    const url = await new Promise((resolve, reject) => {
      const u = new tus.Upload(fs.createReadStream(file, { highWaterMark: 1 << 20 }), {
        endpoint,
        chunkSize,
        metadata,
        ...protocol,
        uploadSize: size,
        onError: reject,
        onSuccess: () => reject(new Error("finished before it could be interrupted")),
        onChunkComplete: (_chunk, accepted) => {
          if (accepted >= size * 0.4) u.abort(false).then(() => resolve(u.url));
        },
      });
      u.start();
    });
    const before = await head(url);
    let sent = 0;
    const stream = fs.createReadStream(file, { start: 0, highWaterMark: 1 << 20 });
    const u = await upload(stream, {
      uploadUrl: url,
      uploadSize: size,
      onChunkComplete: (chunk) => (sent += chunk),
    });
    result = { url: u.url, resumedFrom: before.offset, sentAfterResume: sent };
    break;
  }
  case "parallel": {
    const buffer = fs.readFileSync(file);
    const u = await upload(buffer, { parallelUploads: 3 });
    result = { url: u.url };
    break;
  }
  case "terminate": {
    const url = await new Promise((resolve, reject) => {
      const u = new tus.Upload(fs.createReadStream(file, { highWaterMark: 1 << 20 }), {
        endpoint,
        chunkSize,
        metadata,
        ...protocol,
        uploadSize: size,
        onError: reject,
        onChunkComplete: () => {
          u.abort(true).then(() => resolve(u.url), reject);
        },
      });
      u.start();
    });
    result = { url, after: await head(url) };
    break;
  }
  case "refused": {
    const error = await new Promise((resolve, reject) => {
      const u = new tus.Upload(fs.readFileSync(file), {
        endpoint,
        chunkSize,
        metadata,
        ...protocol,
        retryDelays: [],
        onError: resolve,
        onSuccess: () => reject(new Error("the upload was not refused")),
      });
      u.start();
    });
    const res = error.originalResponse;
    result = { message: error.message, status: res?.getStatus(), body: res?.getBody() };
    break;
  }
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
console.log(JSON.stringify({ ...result, interop: [...interop] }));
