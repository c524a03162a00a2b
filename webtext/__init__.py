"""The `webtext` command: parses a command line and hands it to the stage or training command that owns the
verb (webtext/cli.py). It holds no pipeline or training code, and imports neither Beam nor torch."""
