"""`python -m apprentice.train <flags>` (also the torchrun entry: `torchrun --nproc_per_node=N -m apprentice.train`)."""

import sys

from apprentice.train.cli import main

sys.exit(main())
