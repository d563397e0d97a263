"""Deferrable waits that run in Airflow's triggerer (one module per backend, like the providers' triggers/)."""
