import sys

from metaie_utils.cli import main

sys.exit(main())
