from adapters.cli.main import app

app(prog_name="jitgate")
