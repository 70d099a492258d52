from convnet.cli import main

raise SystemExit(main())
