from miniecs.cli import main

main()
