"""python -m pipeline.synth {medpix,wound,chestxray} --out DIR [...]: the synthetic datasets
(the generators live in pipeline.data.synth and pipeline.data.synth_chestxray)."""

import sys

from pipeline.data.synth import main

if __name__ == "__main__":
    sys.exit(main())
