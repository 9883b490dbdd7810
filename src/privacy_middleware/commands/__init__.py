"""Command groups of the `privacy-middleware` CLI, one module per group.

A group module defines `register(subparsers)` and is listed in `cli.GROUPS`. Every leaf command
gets `--json` and `--env-file` automatically (see `base.add_common_options`); a command prints its
result through `base.Output` and reports an operator mistake by raising `base.OperatorError`, so
each command follows the one exit-code table in docs/cli.md.
"""
