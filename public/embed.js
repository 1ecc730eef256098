// Ferry's uploader on any page, in one line:
//
//   <script type="module" src="https://ferry.example/embed.js"></script>
//   <ferry-upload></ferry-upload>
//
// or, from code: Ferry.mount(element, { chunkMib: 4, token: "…" }).
//
// The widget is Ferry's own page's uploader (the same Rust components and
// client, from the same WebAssembly bundle), drawn in a shadow root so that
// the host page's styles and its own stay apart. It talks to the server it
// was loaded from (or the `server` option), which must list the host
// page's origin in --cors-origin. Options are read once, when the element
// joins the page. Events (`ferry:file-added`,
// `ferry:progress`, `ferry:file-complete`, `ferry:error`, `ferry:all-done`,
// `ferry:ready`) bubble from the element; its methods are start(), pause(),
// resume(), cancel() and list(). See the README's "Embedding" section.

const here = new URL(import.meta.url);

// Attributes and the options they set (the rest of the options object:
// camelCase names, the same values).
const ATTRIBUTES = {
  server: ["server", String],
  token: ["token", String],
  "chunk-mib": ["chunkMib", Number],
  parallel: ["parallel", Number],
  "thumb-size": ["thumbPx", Number],
  lang: ["lang", String],
  transport: ["transport", String],
  "stall-secs": ["stallSecs", Number],
  "max-size": ["maxSize", Number],
  accept: ["accept", (v) => v.split(",").map((s) => s.trim()).filter(Boolean)],
  "max-files": ["maxFiles", Number],
  "show-uploaded": ["showUploaded", (v) => v !== "false"],
  "show-activity": ["showActivity", (v) => v !== "false"],
  autostart: ["autostart", (v) => v !== "false"],
};

// The bundle, loaded once per page and per server however many widgets
// there are; the browser keeps it (the server has it revalidated).
const bundles = new Map();
function bundle(server) {
  if (!bundles.has(server)) {
    const loading = import(new URL("/pkg/ferry.js", server).href).then(async (m) => {
      await m.default({ module_or_path: new URL("/pkg/ferry.wasm", server) });
      return m;
    });
    // A failed load is not kept: the next widget tries again.
    loading.catch(() => bundles.delete(server));
    bundles.set(server, loading);
  }
  return bundles.get(server);
}

function stylesheet(root, server) {
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = new URL("/pkg/ferry.css", server).href;
  const loaded = new Promise((resolve) => {
    link.addEventListener("load", resolve, { once: true });
    // Without its styles the widget still works: go on.
    link.addEventListener("error", resolve, { once: true });
  });
  root.append(link);
  return loaded;
}

class FerryUpload extends HTMLElement {
  #id = null;
  #bundle = null;
  #mounting = null;
  #token = undefined;

  constructor() {
    super();
    // Options given from code (Ferry.mount), under the attributes.
    this.options = this.options || {};
  }

  /// The options: the object's, then the attributes', then the server the
  /// script came from.
  #resolved() {
    const options = { ...this.options };
    for (const [attr, [name, parse]] of Object.entries(ATTRIBUTES)) {
      if (this.hasAttribute(attr)) options[name] = parse(this.getAttribute(attr));
    }
    options.server = new URL(options.server || here.origin).origin;
    // Kept here once read, for a remount after the element is put back.
    if (options.token !== undefined) this.#token = options.token;
    else if (this.#token !== undefined) options.token = this.#token;
    return options;
  }

  connectedCallback() {
    if (this.#id !== null || this.#mounting) return;
    this.#mounting = this.#mount().finally(() => (this.#mounting = null));
  }

  disconnectedCallback() {
    // Moved, not removed: it comes straight back. Removed: its uploads
    // pause (the server keeps what it has) and it lets go of everything.
    queueMicrotask(() => {
      if (!this.isConnected && this.#id !== null) {
        this.#bundle.unmount_embed(this.#id);
        this.#id = null;
        this.shadowRoot.replaceChildren();
      }
    });
  }

  async #mount() {
    const shadow = this.shadowRoot || this.attachShadow({ mode: "open" });
    shadow.replaceChildren();
    const root = document.createElement("div");
    shadow.append(root);
    try {
      const options = this.#resolved();
      const styled = stylesheet(shadow, options.server);
      // Without a token the owner is the browser's Ferry session: one
      // request with credentials first, so that the widget's first calls
      // (sent at once) all carry the same session rather than racing to
      // be given one each.
      const session = options.token
        ? null
        : fetch(new URL("/embed.js", options.server), { method: "HEAD", credentials: "include" }).catch(() => null);
      const [m] = await Promise.all([bundle(options.server), styled, session]);
      if (!this.isConnected) return; // removed while it loaded
      this.#bundle = m;
      this.#id = m.mount_embed(this, root, JSON.stringify(options));
      // The token stays inside the widget, out of the page's DOM.
      this.removeAttribute("token");
      delete this.options.token;
      this.dispatchEvent(
        new CustomEvent("ferry:ready", { bubbles: true, composed: true, detail: { server: options.server } }),
      );
    } catch (e) {
      const message = String(e && e.message ? e.message : e);
      root.setAttribute("role", "alert");
      root.textContent = `Ferry: ${message}`;
      this.dispatchEvent(
        new CustomEvent("ferry:error", { bubbles: true, composed: true, detail: { message } }),
      );
    }
  }

  /// Resolves once the widget is mounted (after `ferry:ready`).
  get ready() {
    return (this.#mounting || Promise.resolve()).then(() => this.#id !== null);
  }

  #call(method) {
    if (this.#id === null) throw new Error("The Ferry widget is not mounted yet");
    this.#bundle.embed_call(this.#id, method);
  }

  /// Sends the files waiting (with autostart="false").
  start() { this.#call("start"); }
  /// Pauses every file; the server keeps what it has.
  pause() { this.#call("pause"); }
  /// Resumes paused files from the server's offset.
  resume() { this.#call("resume"); }
  /// Cancels every file (deleting what the server had of them).
  cancel() { this.#call("cancel"); }
  /// The files of the batch, as the events describe them.
  list() { return this.#id === null ? [] : this.#bundle.embed_list(this.#id); }
}

if (!customElements.get("ferry-upload")) {
  customElements.define("ferry-upload", FerryUpload);
}

/// Mounts a widget in `element` with `options` (see ATTRIBUTES for their
/// names); answers the `<ferry-upload>` element, with its methods.
export function mount(element, options = {}) {
  const widget = document.createElement("ferry-upload");
  widget.options = options;
  element.append(widget);
  return widget;
}

globalThis.Ferry = Object.freeze({ mount });
