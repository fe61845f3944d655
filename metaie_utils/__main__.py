import sys

from metaie_utils.cli import main

if __name__ == "__main__":  # not when a spawned worker process (the few-shot loop's) re-imports this module
    sys.exit(main())
