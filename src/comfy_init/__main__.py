from comfy_init.cli import main

raise SystemExit(main())
