from .task_folder import main

raise SystemExit(main())
