"""Progressive delivery (issue 16): a rollout's steps and traffic (plan), the live metrics its gates read
(metrics), the gates and a step's verdict (gates), and its record on the registry version (record).

The Airflow side (operators/rollout.py, triggers/rollout.py) drives these; nothing here imports Airflow but
metrics_source, which reads a Prometheus connection when a spec names one.
"""
