"""``python -m benchmarks``: the end-to-end report (see benchmarks/e2e.py and benchmarks/README.md)."""
import sys

from benchmarks.e2e import main

sys.exit(main())
