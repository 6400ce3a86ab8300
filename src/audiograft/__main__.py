from audiograft.cli import app

app(prog_name="audiograft")
