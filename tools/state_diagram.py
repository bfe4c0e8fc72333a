#!/usr/bin/env python3
"""Draw the transaction state machine from kapos.core.table as a Mermaid diagram.

    python tools/state_diagram.py                 # print it
    python tools/state_diagram.py --write FILE    # write docs/state-machine.md
    python tools/state_diagram.py --check FILE    # exit 1 if FILE is out of date (make test)
"""

import argparse
import sys

from kapos.core import states as S
from kapos.core.table import IGNORE, REFUSE, TABLE

HEADER = """# The transaction state machine

Generated from `firmware/kapos/core/table.py` by `tools/state_diagram.py` (`make docs`);
`make test` fails when this file no longer matches the table.

Each arrow is a (state, event) cell of the table and the states its handler may move to.
Events not drawn are explicitly ignored or refused (a beep) in that state; the table
lists every pair.

"""


def edges():
    found = {}
    for state in S.ALL:
        for kind, cell in TABLE[state].items():
            if cell in (IGNORE, REFUSE):
                continue
            handler, targets = cell
            for target in targets:
                if target == state:
                    continue  # self-loops (digits, corrections) would drown the picture
                found.setdefault((state, target), []).append(kind)
    return found


def mermaid():
    lines = ["```mermaid", "stateDiagram-v2", "    [*] --> IDLE"]
    for (src, dst), kinds in sorted(edges().items(), key=lambda e: (S.ALL.index(e[0][0]), S.ALL.index(e[0][1]))):
        lines.append("    %s --> %s: %s" % (src, dst, ", ".join(sorted(set(kinds)))))
    lines.append("```")
    return "\n".join(lines) + "\n"


def table_md():
    kinds = list(TABLE[S.IDLE])
    out = ["| state | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for state in S.ALL:
        cells = []
        for kind in kinds:
            cell = TABLE[state][kind]
            if cell == IGNORE:
                cells.append("·")
            elif cell == REFUSE:
                cells.append("beep")
            else:
                handler, targets = cell
                cells.append("→ " + "/".join(targets))
        out.append("| %s | %s |" % (state, " | ".join(cells)))
    return "\n".join(out) + "\n"


def document():
    return HEADER + mermaid() + "\n## Every cell\n\n`·` ignored, `beep` refused, `→` where the handler may go.\n\n" + table_md()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--write")
    parser.add_argument("--check")
    args = parser.parse_args()
    text = document()
    if args.write:
        with open(args.write, "w") as f:
            f.write(text)
        return 0
    if args.check:
        try:
            with open(args.check) as f:
                current = f.read()
        except OSError:
            current = ""
        if current != text:
            print("%s is out of date: run `make docs`" % args.check)
            return 1
        print("state diagram: %s matches the table" % args.check)
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
