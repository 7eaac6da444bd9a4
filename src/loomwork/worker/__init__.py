"""Worker processes: where workflow code runs, apart from the engine and its credentials."""
