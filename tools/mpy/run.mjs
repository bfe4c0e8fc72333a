// Run a Python file inside MicroPython (the WebAssembly build from npm) under node.
//
//   node tools/mpy/run.mjs [--heap BYTES] [--copy SRC:DST]... [--bridge] [--then STEPS.json] SCRIPT.py
//
// --copy puts a host directory (its .py/.json/.toml files, recursively) into MicroPython's
// in-memory filesystem at DST. --heap sets the initial GC heap (this build grows the heap
// on demand: a script that must fit a budget checks gc.mem_free() itself, see
// tests/micropython/). --bridge gives the script a `kapos_bridge` module with TCP streams
// through node's `net`, because this build has no sockets; loopback addresses only.
// --then runs each string of a JSON array as its own top-level run after SCRIPT, in the
// same interpreter: this build's gc.collect() does nothing inside a run (it cannot scan
// the wasm stack) but makes the next top-level run start with a collection, so a step
// that starts by reading gc.mem_alloc() after one that called gc.collect() sees the live
// heap (and node collects JS-held proxies before each step: see releaseProxies).
// The exit code is 0 when the script ran to its end, 1 when it raised.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "fs";
import net from "net";
import path from "path";
import v8 from "v8";
import vm from "vm";

const args = process.argv.slice(2);
let heap = 1024 * 1024;
let bridge = false;
let steps = [];
const copies = [];
let script = null;
while (args.length) {
  const a = args.shift();
  if (a === "--heap") heap = parseInt(args.shift(), 10);
  else if (a === "--copy") copies.push(args.shift());
  else if (a === "--bridge") bridge = true;
  else if (a === "--then") steps = JSON.parse(fs.readFileSync(args.shift(), "utf8"));
  else script = a;
}
if (!script) {
  process.stderr.write("usage: run.mjs [--heap BYTES] [--copy SRC:DST]... [--bridge] SCRIPT.py\n");
  process.exit(2);
}

const mp = await loadMicroPython({
  heapsize: heap,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function mkdirs(p) {
  let at = "";
  for (const part of p.split("/").filter(Boolean)) {
    at += "/" + part;
    try { mp.FS.mkdir(at); } catch (e) { /* exists */ }
  }
}

function copyTree(src, dst) {
  mkdirs(dst);
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "__pycache__" && entry.name !== "node_modules") copyTree(from, dst + "/" + entry.name);
    } else if (/\.(py|mpy|json|toml)$/.test(entry.name)) {
      mp.FS.writeFile(dst + "/" + entry.name, fs.readFileSync(from));
    }
  }
}

for (const spec of copies) {
  const at = spec.lastIndexOf(":");
  copyTree(spec.slice(0, at), spec.slice(at + 1));
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

// A TCP stream for Python: bytes cross as hex text (the simplest lossless form here).
function openStream(host, port) {
  if (!LOOPBACK.has(host)) return Promise.reject(new Error("bridge: loopback only, not " + host));
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host, port });
    const chunks = [];
    let ended = false;
    let waiter = null;
    const wake = () => { if (waiter) { const w = waiter; waiter = null; w(); } };
    sock.on("data", (d) => { chunks.push(d); wake(); });
    sock.on("end", () => { ended = true; wake(); });
    sock.on("error", (e) => { ended = true; wake(); reject(e); });
    sock.on("connect", () => resolve({
      write: (hex) => { sock.write(Buffer.from(hex, "hex")); },
      read: (n) => new Promise((done) => {
        const take = () => {
          if (chunks.length) {
            const all = Buffer.concat(chunks.splice(0));
            const out = all.subarray(0, n);
            if (all.length > n) chunks.push(all.subarray(n));
            done(out.toString("hex"));
          } else if (ended) done("");
          else waiter = take;
        };
        take();
      }),
      close: () => { sock.end(); sock.destroy(); },
    }));
  });
}

// Python objects that JS holds (each top-level run's result, the bridge's promise
// callbacks) stay in MicroPython's heap until JS's garbage collector finalizes their
// proxies, which node rarely does for a small heap: about 64 bytes per run that a Pico W,
// with no JS, never holds. A JS collection before each step, then a turn of the event
// loop for the finalizers, frees them (the Python objects themselves are collected by
// MicroPython's own collector at the next top-level run, after a gc.collect() request).
v8.setFlagsFromString("--expose-gc");
const jsCollect = vm.runInNewContext("gc");

async function releaseProxies() {
  jsCollect();
  await new Promise((resolve) => setTimeout(resolve, 0));
  await new Promise((resolve) => setTimeout(resolve, 0));
}

if (bridge) mp.registerJsModule("kapos_bridge", { connect: openStream });

try {
  await mp.runPythonAsync(fs.readFileSync(script, "utf8"));
  for (const step of steps) {
    await releaseProxies();
    await mp.runPythonAsync(step);
  }
  process.exit(0);
} catch (e) {
  process.stderr.write(String(e && e.message ? e.message : e) + "\n");
  process.exit(1);
}
