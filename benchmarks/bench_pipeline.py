"""The input pipeline against the model it feeds: `kerazoo.benchmarks.pipeline` as a
script (`kerazoo bench pipeline` runs it too, and checks its target).

    python benchmarks/bench_pipeline.py --help
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerazoo.benchmarks.pipeline import main

if __name__ == "__main__":
    main()
