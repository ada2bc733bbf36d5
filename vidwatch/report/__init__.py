"""The job page: one template rendered by the API (``GET /jobs/{job_id}``) and written as a
static ``jobs/<job_id>/report.html`` by each job. Light imports only (jinja2, our keys):
the API loads it."""
