from ppox.cli import main

raise SystemExit(main())
