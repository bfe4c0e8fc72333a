// A MicroPython raw REPL on stdin/stdout, backed by the WebAssembly build under node, so
// mpremote can talk to it through a pty (tests/micropython/test_mpy_pico_flash.py relays
// the pty to this process's pipes). It speaks what mpremote needs of the raw REPL:
//   Ctrl-A enter raw mode ("raw REPL; CTRL-B to exit\r\n>"), Ctrl-B leave it,
//   Ctrl-C clear the line, Ctrl-E A Ctrl-A raw-paste request (answered "R\x00": not
//   supported, so mpremote uses the plain raw mode), code then Ctrl-D: "OK", the
//   output, "\x04", the error text, "\x04>", and Ctrl-D on an empty line a soft reset
//   (modules under kapos forgotten; the filesystem, in memory, stays as on a Pico's flash).
// Each command is its own top-level run, so garbage is collected between commands.
// This build's OSError numbers are Emscripten's (ENOENT is 44, not 2): an error line
// "OSError: 44" is rewritten with the errno's name, as a Pico prints it, so mpremote
// can tell "no such file" from a failure.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const heap = parseInt(process.argv[2] || "1048576", 10);
let sink = null; // where the running command's output goes (null: dropped)
const put = (c) => {
  const bytes = typeof c === "number" ? Buffer.from([c]) : Buffer.from(c);
  if (sink) sink.push(bytes);
};
const mp = await loadMicroPython({ heapsize: heap, stdout: put, stderr: put, linebuffer: false });
const out = (s) => process.stdout.write(typeof s === "string" ? Buffer.from(s, "latin1") : s);

const ERRNO_NAMES = { 44: "ENOENT", 20: "EEXIST", 54: "ENOTDIR", 31: "EISDIR", 55: "ENOTEMPTY", 28: "EINVAL" };
const named = (text) => text.replace(/OSError: (\d+)$/m, (all, n) =>
  ERRNO_NAMES[n] ? "OSError: [Errno " + n + "] " + ERRNO_NAMES[n] : all);
const BANNER = "raw REPL; CTRL-B to exit\r\n";
const SOFT_RESET = "import sys\nfor _k in list(sys.modules):\n    if _k.startswith('kapos'):\n        del sys.modules[_k]\n";
let raw = false;
let line = [];
const queue = [];
let busy = false;

async function execute(code) {
  sink = [];
  let error = "";
  try {
    await mp.runPythonAsync(code);
  } catch (e) {
    error = String(e && e.message ? e.message : e);
    if (!error.endsWith("\n")) error += "\n";
  }
  const output = Buffer.concat(sink);
  sink = null;
  out("OK");
  out(output);
  out("\x04");
  out(named(error).replace(/\n/g, "\r\n"));
  out("\x04>");
}

async function handle(c) {
  if (!raw) {
    if (c === 0x01) { raw = true; line = []; out(BANNER + ">"); }
    else if (c === 0x03) out("\r\n>>> ");
    return;
  }
  if (c === 0x01) {
    if (line.length === 2 && line[0] === 0x05 && line[1] === 0x41) out("R\x00");
    else out(BANNER + ">");
    line = [];
  } else if (c === 0x02) {
    raw = false; line = []; out("\r\nMicroPython (WebAssembly, kapos raw-REPL bridge)\r\n>>> ");
  } else if (c === 0x03) {
    line = [];
  } else if (c === 0x04) {
    if (line.length === 0) {
      try { mp.runPython(SOFT_RESET); } catch (e) { /* nothing to forget */ }
      out("OK\r\nMPY: soft reboot\r\n" + BANNER + ">");
    } else {
      const code = Buffer.from(line).toString("utf8");
      line = [];
      await execute(code);
    }
  } else {
    line.push(c);
  }
}

async function drain() {
  if (busy) return;
  busy = true;
  while (queue.length) await handle(queue.shift());
  busy = false;
}

process.stdin.on("data", (chunk) => { for (const c of chunk) queue.push(c); drain(); });
process.stdin.on("end", () => process.exit(0));
