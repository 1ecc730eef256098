// @tus/server with @tus/file-store, as its README sets it up, on loopback.
//   node tus-node-server.mjs <port> <dir>
import http from "node:http";
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const [port, dir] = process.argv.slice(2);
const tus = new Server({ path: "/files", datastore: new FileStore({ directory: dir }) });
http.createServer((req, res) => tus.handle(req, res)).listen(Number(port), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${port}`);
});
