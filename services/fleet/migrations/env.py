from outpost_kit.db.migrate import run_env

run_env()
