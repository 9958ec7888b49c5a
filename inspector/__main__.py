"""`python -m inspector`: the same as the `inspector` command."""

import sys

from inspector.cli.main import main

sys.exit(main())
