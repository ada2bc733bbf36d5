"""A job's life: its manifest (status.json), its staged source, running it once.

``vidwatch.jobs.run`` loads the pipeline; import it only where a job is run.
"""
