import sys

from fedblog.cli import main

sys.exit(main())
