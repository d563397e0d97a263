"""train: build the Keras model from the spec's layers, fit it, log params and per-epoch metrics to MLflow."""

from __future__ import annotations

import logging

from mlspec.operators.base import MlspecOperator

log = logging.getLogger(__name__)


class TrainOperator(MlspecOperator):
    stage = "train"
    ui_color = "#e6f4ea"
    next_step = "check model.layers and training in the spec, then clear this task"

    def settings(self, context) -> dict:
        """Training settings from the spec, overridden by the run's parameters (Trigger DAG w/ config)."""
        training = self.model_spec.training
        params = context.get("params") or {}
        return {
            "epochs": int(params.get("epochs") or training.epochs),
            "batch_size": training.batch_size,
            "optimizer": {"name": training.optimizer.name, "learning_rate": float(params.get("learning_rate") or training.optimizer.learning_rate)},
            "loss": training.loss,
            "early_stopping": None if training.early_stopping is None else {
                "monitor": training.early_stopping.monitor,
                "patience": training.early_stopping.patience,
                "min_delta": training.early_stopping.min_delta,
                "restore_best_weights": training.early_stopping.restore_best_weights,
            },
            "seed": training.seed,
        }

    def run(self, context) -> dict:
        from mlspec.ml import keras_model, training
        from mlspec.registry.tracking import TrainingTracker

        spec = self.model_spec
        dataset = self.dataset(context)
        settings = self.settings(context)
        training.set_seeds(settings["seed"])
        model = keras_model.build_model(
            input_shape=tuple(dataset.x_train.shape[1:]),
            preprocess=[step.to_mapping() for step in spec.data.preprocess],
            layers=[step.to_mapping() for step in spec.model.layers],
            x_train=dataset.x_train,
            seed=settings["seed"],
            num_classes=dataset.num_classes,  # a wrong output width fails here, clearly, not inside fit()
        )
        tracking_connection = spec.registry.connection if spec.registry.backend == "mlflow" else None
        tags = {"dag_id": self.dag_id, "airflow_run_id": context["run_id"], "spec_hash": spec.spec_hash}
        with TrainingTracker(tracking_connection, experiment=f"mlspec/{spec.name}", run_name=context["run_id"], tags=tags) as tracker:
            tracker.log_params(
                {
                    "epochs": settings["epochs"],
                    "batch_size": settings["batch_size"],
                    "optimizer": settings["optimizer"]["name"],
                    "learning_rate": settings["optimizer"]["learning_rate"],
                    "loss": settings["loss"],
                    "seed": settings["seed"],
                    "layers": len(spec.model.layers),
                    "data_source": spec.data.source,
                    "train_samples": len(dataset.x_train),
                }
            )
            result = training.train(
                model,
                dataset,
                epochs=settings["epochs"],
                batch_size=settings["batch_size"],
                optimizer=settings["optimizer"],
                loss=settings["loss"],
                early_stopping=settings["early_stopping"],
                on_epoch_end=tracker.log_epoch,
            )
            tracking_run_id = tracker.run_id
        uri = self.store.write_bytes(f"{self.run_prefix(context)}/train/model.keras", training.save_model_bytes(model))
        final = {name: values[-1] for name, values in result["history"].items()}
        log.info("trained %d epochs%s; wrote %s", result["epochs_run"], " (stopped early)" if result["stopped_early"] else "", uri)
        return {
            "model_uri": uri,
            "tracking_run_id": tracking_run_id,
            "epochs_run": result["epochs_run"],
            "stopped_early": result["stopped_early"],
            "final_epoch_metrics": {k: round(float(v), 6) for k, v in final.items()},
        }
