import sys

from examples.sentiment.build import main

sys.exit(main())
