"""``python -m bench.slowfs BACKING MOUNTPOINT [options]``: run the slow-volume server."""

import sys

from bench.slowfs.server import main

sys.exit(main())
