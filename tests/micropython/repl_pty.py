"""A serial port for mpremote whose far end is MicroPython: a pty relayed to
tools/mpy/repl_bridge.mjs (the WebAssembly build under node, speaking the raw REPL).

    with ReplPty() as port:      # port: the pty's device path, e.g. /dev/pts/7
        subprocess.run(["mpremote", "connect", port, "exec", "print(1)"])

The relay thread stops when the context exits (an event, and select() with a short
timeout so it notices); node is ended through its pipe."""

import os
import select
import subprocess
import threading
import tty

import mpjs

BRIDGE = os.path.join(mpjs.HERE, "repl_bridge.mjs")


class ReplPty:
    def __init__(self, heap=1024 * 1024):
        self.heap = heap

    def __enter__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.node = subprocess.Popen(["node", BRIDGE, str(self.heap)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, cwd=mpjs.HERE, bufsize=0)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._to_node, daemon=True),
                        threading.Thread(target=self._from_node, daemon=True)]
        for t in self.threads:
            t.start()
        return self.path

    def _to_node(self):
        while not self.stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    return
                self.node.stdin.write(data)

    def _from_node(self):
        while not self.stop.is_set():
            data = self.node.stdout.read1(4096) if hasattr(self.node.stdout, "read1") else os.read(
                self.node.stdout.fileno(), 4096)
            if not data:
                return
            os.write(self.master, data)

    def __exit__(self, *exc):
        self.stop.set()
        self.node.stdin.close()
        try:
            self.node.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.node.kill()
            self.node.wait()
        for t in self.threads:
            t.join(timeout=5)
        os.close(self.master)
        os.close(self.slave)
        return False
