"""Local stand-ins for every external system the sync talks to.

`marketo` and `dynamics` emulate the two vendors' wire protocols, `functions` hosts
`function_app` the way the Azure Functions runtime would. None of this is deployed
(`.funcignore` excludes the folder) and nothing in `sync_core` knows it exists.
"""
