from webtext.cli import run

run()
