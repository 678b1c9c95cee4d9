import sys

from cvat_ext.cli import main

sys.exit(main())
