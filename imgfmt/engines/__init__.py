"""Where the work runs. ``local``: worker processes (or threads) on this machine. An engine
decides only where work runs, never what bytes come out."""
