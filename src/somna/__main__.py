"""``python -m somna`` runs the command line; ``torchrun --nproc_per_node=N -m somna train …`` trains with
N data-parallel processes (see :mod:`somna.training.distributed`)."""

import os
import sys

from somna.cli import main

if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun: join its process group first
    from somna.training.distributed import session

    with session():
        status = main()
else:  # torch is imported only by the commands that need it
    status = main()
sys.exit(status)
