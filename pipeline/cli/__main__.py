"""`python -m goodhart.pipeline.cli ...` (what `accelerate launch -m` runs): the `goodhart` command."""

import sys

from goodhart.pipeline.cli.main import main

sys.exit(main())
