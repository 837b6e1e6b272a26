"""The served SavedModel against the Keras model it came from:
`kerazoo.benchmarks.serving` as a script (`kerazoo bench serving` runs it too, and
checks its target).

    python benchmarks/bench_serving.py --help
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerazoo.benchmarks.serving import main

if __name__ == "__main__":
    sys.exit(0 if main() else 1)
