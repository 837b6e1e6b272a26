"""Stage 1 on cached body features against the frozen body every epoch:
`kerazoo.benchmarks.stage1` as a script (`kerazoo bench stage1` runs it too, and
checks its target).

    python benchmarks/bench_stage1.py --help
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerazoo.benchmarks.stage1 import main

if __name__ == "__main__":
    main()
