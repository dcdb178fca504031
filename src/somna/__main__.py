"""``python -m somna`` runs the command line (and ``torchrun -m somna`` will, for distributed training)."""

import sys

from somna.cli import main

sys.exit(main())
