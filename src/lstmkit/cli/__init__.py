"""The `lstmkit` command: one module per subcommand (forecast, predict, demo), wired in main.py."""
