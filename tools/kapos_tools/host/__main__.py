"""python -m kapos_tools.host [options]: the same as `kapos host [options]`."""

import sys

from kapos_tools.host.cli import main

sys.exit(main())
