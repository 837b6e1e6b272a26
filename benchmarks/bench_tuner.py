"""keras-tuner's overhead in a kerazoo search: `kerazoo.benchmarks.tuner` as a script
(`kerazoo bench tuner` runs it too, and checks its target).

    python benchmarks/bench_tuner.py --help
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerazoo.benchmarks.tuner import main

if __name__ == "__main__":
    main()
