from synth_assets.cli import main

raise SystemExit(main())
