"""Settings (environment) and the models of the files ops edit (feeds.yaml, ...)."""
