"""Deferrable waits that run in Airflow's triggerer: one module per backend, like a provider's triggers/."""
