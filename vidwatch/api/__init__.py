"""The HTTP API: routes, streamed uploads and signed file links.

Imports neither the pipeline nor the models: a job is handed to the runner as a spec.
"""
