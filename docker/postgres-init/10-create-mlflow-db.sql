-- Runs once, when the postgres volume is first created: MLflow keeps its runs and registered
-- models in a database of its own beside Airflow's. (An existing volume is not re-initialised:
-- `docker compose down -v` starts over.)
CREATE DATABASE mlflow;
