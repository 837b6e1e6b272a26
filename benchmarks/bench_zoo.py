"""kerazoo's zoo models against keras.applications': `kerazoo.benchmarks.zoo` as a
script (`kerazoo bench zoo` runs it too, and checks its target).

    python benchmarks/bench_zoo.py --help
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerazoo.benchmarks.zoo import main

if __name__ == "__main__":
    main()
