"""``python -m device_sim``: the fleet simulator (same as ``fedmq devices``)."""

import sys

from fedmq.cli import main

sys.exit(main(["devices", *sys.argv[1:]]))
