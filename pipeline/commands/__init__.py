"""The command implementations, one module per command; ``pipeline.cli`` only parses their
arguments. Commands sit above everything else: they read files and settings, start servers
and processes, and print."""
