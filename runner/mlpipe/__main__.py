from mlpipe.cli.main import main

main()
