"""python -m pipeline.synth {medpix,wound,chestxray,brats} --out DIR [...]: the synthetic datasets
(the generators live in the sub-package pipeline.data.synth, one module per layout)."""

import sys

from pipeline.data.synth import main

if __name__ == "__main__":
    sys.exit(main())
