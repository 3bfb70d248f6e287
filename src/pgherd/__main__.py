from pgherd.cli.entry import main

main()
