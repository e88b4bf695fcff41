"""The admin commands behind `python -m sync_core <command>`.

What an admin runs from a shell, never the Azure Functions: `setup`, `doctor`, `fields`,
`status` / `errors`, `explain`, `plan`, `run-once` and `release`, plus the text each one
prints. They build their API clients and the state store through `sync_core.runtime`,
the same composition root the functions use, so a command sees a configuration exactly
as a deployed cycle would: a check that passes here cannot fail there because the two
authenticated differently. The engine never imports this package.
"""
