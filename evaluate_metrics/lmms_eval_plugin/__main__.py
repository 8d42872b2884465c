from .task_folder import main

main()
