"""``python -m pulp_devcluster.node up|down|cleanup|provision``."""

import sys

from pulp_devcluster.node.cli import main

if __name__ == "__main__":
    sys.exit(main())
