"""The run folder, torch-free: its format (`layout`), atomic files (`files`), the lock and
`run.json` (`folder`), and the metrics writers (`tracking`)."""
