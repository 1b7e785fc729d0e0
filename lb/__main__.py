"""`python -m lb` is `lb`."""

import sys

from lb.cli.main import main

sys.exit(main())
