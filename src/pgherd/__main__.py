from pgherd.cli.main import main

main()
