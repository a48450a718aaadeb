from operator_cli.main import cli

cli()
