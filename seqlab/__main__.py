"""``python -m seqlab``: the same command as ``seqlab`` (and what ``torchrun -m seqlab`` runs)."""

import sys

from .cli import main

sys.exit(main())
