"""kerazoo's optimizers against Keras's built-ins: `kerazoo.benchmarks.optimizers` as a
script (`kerazoo bench optimizers` runs it too, and checks its target).

    python benchmarks/bench_optimizers.py --help
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from kerazoo.benchmarks.optimizers import main

if __name__ == "__main__":
    main()
