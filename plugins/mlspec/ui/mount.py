"""Where the Models app is mounted in Airflow's api-server."""

URL_PREFIX = "/mlspec"
