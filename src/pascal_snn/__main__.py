"""``python -m pascal_snn`` (also what ``torchrun -m pascal_snn`` runs)."""

import sys

from pascal_snn.cli import main

sys.exit(main())
