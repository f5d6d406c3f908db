import sys

from deployd.cli.main import main

sys.exit(main())
