from pgherd.cli.entry import program

program()
