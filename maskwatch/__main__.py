import sys

from maskwatch.cli.main import main

sys.exit(main())
