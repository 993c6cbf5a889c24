import sys

from duckfleet.cli import main

sys.exit(main())
