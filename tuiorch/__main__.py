from tuiorch.cli import main

raise SystemExit(main())
