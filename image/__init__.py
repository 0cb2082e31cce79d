"""The image's inputs that are not the worker: its lock, its import list, its trim (trim.py)."""
