from sgflow.cli import main

main()
