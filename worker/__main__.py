import os
import sys

from worker.cli import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
# os._exit, not sys.exit: a daemon thread stuck in native code (an executor that ignored its
# interrupt) or a client library's non-daemon thread must not hold the process past Cloud Run's
# 10 s SIGTERM grace. Everything that matters was flushed, acked or nacked before main returned.
os._exit(code)
