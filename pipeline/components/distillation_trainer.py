"""``DistillationTrainer``: TFX's Trainer with one more input, the teacher model (f_K).

Domain pretraining and refined fine-tuning learn from a knowledge model trained earlier in the same
pipeline. TFX's Trainer takes one model input (``base_model``, the start point), so the teacher
gets its own channel: it is a tracked input (lineage in MLMD, caching sees a new teacher) and the
executor hands its URI to the rw-tf task as ``kd_teacher`` inside the typed ``custom_config``
before running TFX's ``GenericExecutor`` unchanged.

Example:
    >>> DistillationTrainer(teacher_model=knowledge_trainer.outputs["model"],      # doctest: +SKIP
    ...                     examples=..., transform_graph=..., base_model=..., run_fn=TRAINER_RUN_FN,
    ...                     train_args=..., eval_args=..., custom_config=contract.to_custom_config())
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter

TEACHER_MODEL_KEY = "teacher_model"


class DistillationTrainerSpec(standard_component_specs.TrainerSpec):
    INPUTS = {**standard_component_specs.TrainerSpec.INPUTS,
              TEACHER_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model)}


class DistillationExecutor(trainer_executor.GenericExecutor):
    """Puts the teacher's URI into the contract's task config, then trains like the Trainer."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        teacher = artifact_utils.get_single_uri(input_dict[TEACHER_MODEL_KEY])
        contract = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "null")
        if not isinstance(contract, dict) or "task_config" not in contract:
            raise ValueError("DistillationTrainer needs a TrainerContract in custom_config")
        contract["task_config"]["kd_teacher"] = teacher
        properties = {**exec_properties, standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(contract)}
        inputs = {k: v for k, v in input_dict.items() if k != TEACHER_MODEL_KEY}
        super().Do(inputs, output_dict, properties)


class DistillationTrainer(base_component.BaseComponent):
    """A Trainer (``run_fn`` only) whose task distils from ``teacher_model``."""

    SPEC_CLASS = DistillationTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(DistillationExecutor)

    def __init__(self, teacher_model: types.BaseChannel, examples: types.BaseChannel, run_fn: str,
                 custom_config: Dict[str, Any], transform_graph: Optional[types.BaseChannel] = None,
                 schema: Optional[types.BaseChannel] = None, base_model: Optional[types.BaseChannel] = None,
                 train_args: Optional[trainer_pb2.TrainArgs] = None,
                 eval_args: Optional[trainer_pb2.EvalArgs] = None) -> None:
        spec = DistillationTrainerSpec(
            examples=examples, transform_graph=transform_graph, schema=schema, base_model=base_model,
            teacher_model=teacher_model, train_args=train_args or trainer_pb2.TrainArgs(),
            eval_args=eval_args or trainer_pb2.EvalArgs(), run_fn=run_fn, custom_config=json.dumps(custom_config),
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun))
        super().__init__(spec=spec)
