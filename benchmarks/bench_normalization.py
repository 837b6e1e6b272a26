"""kerazoo's BatchNormalization against Keras's: `kerazoo.benchmarks.normalization` as a
script (`kerazoo bench normalization` runs it too, and checks its target).

    python benchmarks/bench_normalization.py --help
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerazoo.benchmarks.normalization import main

if __name__ == "__main__":
    main()
