"""The ``asyncup`` command, on top of the public API: argument parsing and rendering only.

main (the subcommands), connection (the flags and the Uploader every subcommand opens), cp
and cp_sources (files, directories, stdin), uploads (ls, abort), render (bars, lines, JSON
lines) and demo.
"""
