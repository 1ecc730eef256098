// A fault-injecting TCP proxy for the tests: between a client and Ferry it
// resets connections, stalls them and cuts request bodies mid-way, at
// random (seeded) moments, but only in requests that carry upload bytes
// (PATCH /files/..., and if asked the POST /files/ that creates an upload,
// which may carry a small file whole), so that the page itself always
// loads. A creation request may also have its answer lost: Ferry carried
// it out, and the client never hears where the upload is.
import * as net from "node:net";

export type Faults = {
  connections: number;
  resets: number;
  stalls: number;
  cuts: number;
  /** Creation requests carried out whose answer never reached the client. */
  lostAnswers: number;
  /** Faults of any kind in creation requests. */
  inCreations: number;
};

function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}

/** A TCP proxy to Ferry on `targetPort`: answers flow back untouched, and
 * each kind of proxy decides in `forward` what becomes of the client's
 * bytes. */
abstract class Proxy {
  private server: net.Server | null = null;
  private sockets = new Set<net.Socket>();

  constructor(private targetPort: number) {}

  async start(port: number) {
    this.server = net.createServer((client) => this.handle(client));
    await new Promise<void>((resolve) => this.server!.listen(port, "127.0.0.1", resolve));
  }

  async stop() {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server?.close(r));
  }

  private handle(client: net.Socket) {
    const upstream = net.connect(this.targetPort, "127.0.0.1");
    this.sockets.add(client);
    this.sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
    const passes = this.forward(client, upstream, end);
    upstream.on("data", (d) => {
      if (!passes || passes()) client.write(d);
    });
  }

  /** Wires the client's bytes to `upstream`; `end` closes both sides. May
   * answer a test of whether Ferry's next answer on this connection is
   * let through (by default all are). */
  protected abstract forward(client: net.Socket, upstream: net.Socket, end: () => void): (() => boolean) | void;
}

export class FaultProxy extends Proxy {
  readonly faults: Faults = { connections: 0, resets: 0, stalls: 0, cuts: 0, lostAnswers: 0, inCreations: 0 };
  private random: () => number;

  /** `rate`: the share of upload requests that get a fault; `creations`:
   * whether requests creating an upload are among them. */
  constructor(targetPort: number, seed: number, private rate = 0.5, private creations = false) {
    super(targetPort);
    this.random = rng(seed);
  }

  get total() {
    return this.faults.resets + this.faults.stalls + this.faults.cuts + this.faults.lostAnswers;
  }

  protected forward(client: net.Socket, upstream: net.Socket, end: () => void) {
    this.faults.connections++;

    let fault: "reset" | "stall" | "cut" | null = null;
    let after = 0;
    let seen = 0;
    // The request on its way is to lose its answer.
    let losing = false;
    // Cut: nothing more goes up this connection (bytes after a cut would
    // leave a hole in the body, which no network makes).
    let cut = false;
    client.on("data", (chunk: Buffer) => {
      if (cut) return;
      // Each upload request on this connection may get a fault, somewhere
      // in its first megabyte (of a creation request, somewhere in it,
      // headers included, or after it: in its answer).
      const patch = chunk.includes("PATCH /files/");
      const creation = this.creations && chunk.includes("POST /files/");
      if (patch || creation) {
        seen = 0;
        fault = null;
        losing = false;
        if ((creation && this.faults.inCreations === 0) || this.random() < this.rate) {
          let r = this.random();
          if (creation) {
            // The first always loses its answer: the case the page and the
            // server must meet, whatever the seed.
            if (this.faults.inCreations === 0) r = 0;
            this.faults.inCreations++;
            const text = chunk.toString("latin1");
            const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1] ?? 0);
            const whole = text.indexOf("\r\n\r\n") + 4 + length;
            losing = r < 0.35;
            fault = losing ? null : r < 0.55 ? "reset" : r < 0.8 ? "cut" : "stall";
            after = Math.floor(this.random() * whole);
          } else {
            fault = r < 0.4 ? "reset" : r < 0.7 ? "cut" : "stall";
            after = Math.floor(this.random() * 1024 * 1024);
          }
        }
      }
      if (fault && seen + chunk.length > after) {
        const kind = fault;
        fault = null;
        const head = chunk.subarray(0, Math.max(0, after - seen));
        if (kind === "reset") {
          this.faults.resets++;
          upstream.write(head);
          client.resetAndDestroy();
          upstream.destroy();
          return;
        }
        if (kind === "cut") {
          this.faults.cuts++;
          cut = true;
          upstream.write(head, () => end());
          return;
        }
        this.faults.stalls++;
        client.pause();
        setTimeout(() => client.resume(), 500 + Math.floor(this.random() * 1500));
      }
      seen += chunk.length;
      upstream.write(chunk);
    });
    return () => {
      if (!losing) return true;
      losing = false;
      this.faults.lostAnswers++;
      end();
      return false;
    };
  }
}

/** A proxy that refuses upload requests larger than `limit` bytes with a
 * bare 413, as nginx does past its `client_max_body_size`, and passes
 * everything else. It records the largest PATCH body it let through. */
export class SizeLimitProxy extends Proxy {
  refused = 0;
  largestPassed = 0;

  constructor(targetPort: number, private limit: number) {
    super(targetPort);
  }

  protected forward(client: net.Socket, upstream: net.Socket, end: () => void) {
    let refusing = false;
    client.on("data", (chunk: Buffer) => {
      if (refusing) return; // the refused request's body goes nowhere
      const text = chunk.toString("latin1");
      if (text.startsWith("PATCH /files/")) {
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1] ?? 0);
        if (length > this.limit) {
          this.refused++;
          refusing = true;
          client.end("HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
          upstream.destroy();
          return;
        }
        this.largestPassed = Math.max(this.largestPassed, length);
      }
      upstream.write(chunk);
    });
  }
}

/** A proxy that swallows the first upload request after its first
 * `after` bytes: it neither forwards the rest nor closes the connection,
 * as a broken middlebox does. Everything else passes. */
export class SwallowProxy extends Proxy {
  swallowed = 0;

  constructor(targetPort: number, private after = 64 * 1024) {
    super(targetPort);
  }

  protected forward(client: net.Socket, upstream: net.Socket, end: () => void) {
    let swallowing = false;
    let seen = 0;
    client.on("data", (chunk: Buffer) => {
      if (swallowing) {
        seen += chunk.length;
        if (seen > this.after) return; // swallowed: never forwarded, never closed
        upstream.write(chunk.subarray(0, Math.max(0, this.after - (seen - chunk.length))));
        return;
      }
      if (this.swallowed === 0 && chunk.toString("latin1").startsWith("PATCH /files/")) {
        this.swallowed++;
        swallowing = true;
        seen = chunk.length;
        upstream.write(chunk.subarray(0, Math.min(chunk.length, this.after)));
        return;
      }
      upstream.write(chunk);
    });
  }
}

/** A proxy that flips one bit in the first upload request's body, `at`
 * bytes past its headers, as a faulty middlebox or memory might: the
 * request is otherwise whole, so only a comparison of hashes can tell.
 * Everything else passes. */
export class FlipProxy extends Proxy {
  flipped = 0;

  constructor(targetPort: number, private at = 1024 * 1024) {
    super(targetPort);
  }

  protected forward(client: net.Socket, upstream: net.Socket, _end: () => void) {
    // Body bytes of this connection's upload request seen so far; -1
    // outside one.
    let body = -1;
    client.on("data", (chunk: Buffer) => {
      if (this.flipped === 0 && body < 0 && chunk.toString("latin1").startsWith("PATCH /files/")) {
        const headersEnd = chunk.indexOf("\r\n\r\n");
        if (headersEnd >= 0) body = -(headersEnd + 4); // counts up to 0 at the body's start
      }
      if (this.flipped === 0 && body !== -1) {
        const start = body;
        body += chunk.length;
        const i = this.at - start;
        if (i >= 0 && i < chunk.length) {
          chunk = Buffer.from(chunk);
          chunk[i] ^= 0x01;
          this.flipped++;
        }
      }
      upstream.write(chunk);
    });
  }
}
