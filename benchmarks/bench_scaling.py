"""efficientnet_b0's training step by batch and image size: `kerazoo.benchmarks.scaling`
as a script (`kerazoo bench scaling` runs it too).

    python benchmarks/bench_scaling.py --help
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerazoo.benchmarks.scaling import main

if __name__ == "__main__":
    main()
