"""TF Serving deployment files generated from a Pusher output directory.

- ``models.config``: ``ModelServerConfig`` text proto (name, base path, version policy), built
  with the official proto from tensorflow-serving-api;
- ``batching_parameters.txt``: ``BatchingParameters`` text proto for ``--enable_batching``;
- ``monitoring.config``: Prometheus endpoint for ``--monitoring_config_file``;
- ``kubernetes.yaml``: a Deployment + Service running the official image on the same files.
The local server (``rw-tf serve``) reads the same ``models.config`` and batching file.

Example:
    >>> spec = ModelSpec(name="rw_tf_finetune", base_path="/models/rw_tf_finetune")
    >>> "model_version_policy" in models_config_text([spec])
    True
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import posixpath
import re
import shlex
from typing import ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from rw_tf.atomic_write import atomic_write
from rw_tf.config import DictConfig, check_choice, check_numbers
from rw_tf.path_checks import require_model_folder
from rw_tf_serving.batching import check_batching
from rw_tf_serving.protos import BATCHING_PARAMETERS, parse_text, read_text_proto

VERSION_POLICIES = ("latest", "all", "specific")


@dataclasses.dataclass(frozen=True)
class ModelSpec(DictConfig):
    """A model to serve: its name (in requests and REST URLs), the folder of its numbered versions,
    which versions to load (TF Serving's ``model_version_policy``) and the labels that name versions
    (``version_labels``, e.g. ``{"stable": 42}``). Numbers are checked as the configs' (``num_latest``
    > 0; ``versions`` and labelled versions int64s from 0, ``versions`` each once)."""

    name: str
    base_path: str
    version_policy: str = "latest"
    num_latest: int = 1
    versions: Sequence[int] = ()
    # TF Serving's version_labels ("stable" -> 42): requests may name a label instead of a version.
    # Given as a mapping or (label, version) pairs; kept as sorted pairs (the spec stays hashable).
    version_labels: Tuple[Tuple[str, int], ...] = ()

    may_be_zero: ClassVar[Tuple[str, ...]] = ("versions",)

    def __post_init__(self) -> None:
        labels = self.version_labels
        if isinstance(labels, Mapping):
            labels = labels.items()
        with contextlib.suppress(TypeError, ValueError):   # not pairs: validate says what it needs
            labels = tuple(sorted((label, version) for label, version in labels))
        object.__setattr__(self, "version_labels", labels)
        super().__post_init__()

    def validate(self) -> None:
        check_model_name(self.name)
        require_model_folder(self.base_path, f"the base_path of model '{self.name}'")
        check_choice("version_policy", self.version_policy, VERSION_POLICIES)
        if self.version_policy == "specific" and not self.versions:
            raise ValueError("the 'specific' version policy needs versions")
        # TF Serving's policy is a oneof: a models.config cannot give both, a command line or a
        # ModelSpec could (and the other would be ignored).
        if self.version_policy != "specific":
            self.require_defaults(["versions"], "with version_policy 'specific'")
        if self.version_policy != "latest":
            self.require_defaults(["num_latest"], "with version_policy 'latest'")
        if not (isinstance(self.version_labels, tuple)
                and all(isinstance(pair, tuple) and len(pair) == 2 for pair in self.version_labels)):
            raise TypeError(f"ModelSpec.version_labels must map labels to versions, got {self.version_labels!r}"[:300])
        labels = [label for label, _ in self.version_labels]
        if len(set(labels)) != len(labels):
            raise ValueError(f"model '{self.name}' names a version label more than once: {labels}")
        for label, version in self.version_labels:
            check_model_name(label, f"{label!r} of model '{self.name}'", kind="version label")
            name = f"version_labels[{label!r}]"
            check_numbers("ModelSpec", {name: version}, {name: int}, may_be_zero=(name,))

    @property
    def labels(self) -> Dict[str, int]:
        return dict(self.version_labels)


# TF Serving's REST API finds a model by the URL path segment after /v1/models/ (``[^/:]+``) and
# does not decode percent-escapes, so a name it can serve over REST is printable ASCII other than a
# space (``[!-~]``) without these.
_NOT_IN_REST_NAMES = set("/:?#%")


def check_model_name(name: str, shown: str = "", kind: str = "model name") -> None:
    """``ValueError`` for a model name (or, with ``kind``, a version label) that no REST URL can
    hold (the local server and TF Serving find both in the URL); ``shown`` names it in the message."""
    if not isinstance(name, str) or not re.fullmatch(r"[!-~]+", name) or _NOT_IN_REST_NAMES & set(name):
        raise ValueError(f"{shown or repr(name)} cannot be a TF Serving {kind}: REST requests find it in the URL, "
                         f"which holds printable ASCII without spaces or {''.join(sorted(_NOT_IN_REST_NAMES))}")


@dataclasses.dataclass(frozen=True)
class BatchingParameters(DictConfig):
    """Server-side batching (same fields and meaning as TF Serving's; its text format in files)."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 2
    allowed_batch_sizes: Tuple[int, ...] = ()

    may_be_zero: ClassVar[Tuple[str, ...]] = ("batch_timeout_micros",)

    def validate(self) -> None:
        # Checked here too (not only when a Batcher is built at a version's load), so a bad file
        # stops `rw-tf serve` at start instead of failing every load in the background.
        check_batching(self.max_batch_size, self.batch_timeout_micros, self.num_batch_threads,
                       self.max_enqueued_batches, self.allowed_batch_sizes)

    def to_text(self) -> str:
        text = "".join(f"{name} {{ value: {getattr(self, name)} }}\n" for name in _WRAPPED)
        return text + "".join(f"allowed_batch_sizes: {size}\n" for size in self.allowed_batch_sizes)

    @classmethod
    def from_file(cls, path: str) -> "BatchingParameters":
        """Reads a TF Serving ``--batching_parameters_file``; unset fields keep these defaults."""
        return cls.from_proto(read_text_proto(path, BATCHING_PARAMETERS))

    @classmethod
    def from_text(cls, text: str) -> "BatchingParameters":
        return cls.from_proto(parse_text(text, BATCHING_PARAMETERS))

    @classmethod
    def from_proto(cls, proto) -> "BatchingParameters":
        values = {name: getattr(proto, name).value for name in _WRAPPED if proto.HasField(name)}
        return cls(**values, allowed_batch_sizes=tuple(proto.allowed_batch_sizes))


_WRAPPED = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")


def model_server_config(specs: Sequence[ModelSpec]) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    for spec in specs:
        model = config.model_config_list.config.add(name=spec.name, base_path=spec.base_path,
                                                    model_platform="tensorflow")
        policy = model.model_version_policy
        if spec.version_policy == "latest":
            policy.latest.num_versions = spec.num_latest
        elif spec.version_policy == "all":
            policy.all.SetInParent()
        else:
            policy.specific.versions.extend(spec.versions)
        for label, version in spec.version_labels:
            model.version_labels[label] = version
    return config


def models_config_text(specs: Sequence[ModelSpec]) -> str:
    return text_format.MessageToString(model_server_config(specs))


# Models one config may list: each is a manager polling its folder and loading its versions.
MAX_MODELS = 1_000


def read_models_config(path: str) -> List[ModelSpec]:
    """Parses a ``models.config`` (ModelServerConfig text proto) into ``ModelSpec``s."""
    config = read_text_proto(path, model_server_config_pb2.ModelServerConfig)
    if not config.model_config_list.config:
        raise ValueError(f"{path} lists no model (model_config_list {{ config {{ name: ... base_path: ... }} }})")
    return model_specs(config, path)


def check_unique_names(names: Sequence[str], source: str = "the model list") -> None:
    """``ValueError`` unless every model has a name, and a name of its own."""
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"{source}: every model needs a name of its own, got {list(names)[:20]}")


def model_specs(config: model_server_config_pb2.ModelServerConfig, source: str,
                absolute_paths: bool = False) -> List[ModelSpec]:
    """The ``ModelSpec``s of a ModelServerConfig's ``model_config_list``, checked as TF Serving
    checks them (names given once, the 'tensorflow' platform; with ``absolute_paths``, base paths
    that do not depend on the server's working folder, as its ReloadConfig requires); a
    ``ValueError`` names ``source`` and the model."""
    if config.WhichOneof("config") == "custom_model_config":
        raise ValueError(f"{source}: a custom_model_config is not supported; list the models in model_config_list")
    models = config.model_config_list.config
    names = [model.name for model in models]
    if len(names) > MAX_MODELS:
        raise ValueError(f"{source} lists {len(names):,} models; this server serves at most {MAX_MODELS:,}")
    check_unique_names(names, source)
    specs = []
    for model in models:
        if not model.base_path:
            raise ValueError(f"{source}: model {model.name!r} has no base_path")
        if absolute_paths and not (os.path.isabs(model.base_path) or "://" in model.base_path):
            raise ValueError(f"{source}: model {model.name!r} needs an absolute base_path or URI (the server's "
                             f"working folder is not the caller's), got {model.base_path!r}")
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{source}: model {model.name!r} has model_platform {model.model_platform!r}; "
                             "this server loads TensorFlow SavedModels ('tensorflow')")
        if model.HasField("logging_config"):
            raise ValueError(f"{source}: model {model.name!r} has a logging_config; this server does not log "
                             "requests: remove it")
        policy = model.model_version_policy
        kind = policy.WhichOneof("policy_choice") or "latest"
        try:
            specs.append(ModelSpec(name=model.name, base_path=model.base_path, version_policy=kind,
                                   num_latest=policy.latest.num_versions or 1,
                                   versions=tuple(policy.specific.versions),
                                   version_labels=dict(model.version_labels)))
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None
    return specs


MONITORING_CONFIG = 'prometheus_config {\n  enable: true\n  path: "/monitoring/prometheus/metrics"\n}\n'

KUBERNETES_TEMPLATE = """\
# TF Serving on Kubernetes: mount the Pusher output (here a PVC) and this directory's configs.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: rw-tf-serving
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: rw-tf-serving}}
  template:
    metadata:
      labels: {{app: rw-tf-serving}}
    spec:
      containers:
      - name: tensorflow-serving
        image: {image}
        args:
        - --port=8500
        - --rest_api_port=8501
        - --model_config_file=/config/models.config
        - --model_config_file_poll_wait_seconds=60
        - --file_system_poll_wait_seconds=2
        - --enable_batching=true
        - --batching_parameters_file=/config/batching_parameters.txt
        - --monitoring_config_file=/config/monitoring.config
        ports:
        - {{containerPort: 8500, name: grpc}}
        - {{containerPort: 8501, name: rest}}
        readinessProbe:
          httpGet: {{path: {readiness_path}, port: 8501}}
        volumeMounts:
        - {{name: models, mountPath: {models_mount}, readOnly: true}}
        - {{name: config, mountPath: /config, readOnly: true}}
      volumes:
      - name: models
        persistentVolumeClaim: {{claimName: rw-tf-models}}
      - name: config
        configMap: {{name: rw-tf-serving-config}}
---
apiVersion: v1
kind: Service
metadata:
  name: rw-tf-serving
spec:
  selector: {{app: rw-tf-serving}}
  ports:
  - {{name: grpc, port: 8500, targetPort: 8500}}
  - {{name: rest, port: 8501, targetPort: 8501}}
"""

# The exports use tensorflow-text ops; TF Serving links tensorflow_text:ops_lib into its model server
# (tests/test_tf_serving_ops.py checks every exported op is core TensorFlow or tensorflow-text).
DEFAULT_IMAGE = "tensorflow/serving:2.16.1"


def pushed_models(push_root: str) -> Tuple[List[str], Dict[str, str]]:
    """The model folders under ``push_root`` (each holds a numeric version folder, which is what TF
    Serving loads) and the other entries with the reason they are not models. ``ValueError`` for a
    model name that no config file or REST URL can hold."""
    if not os.path.isdir(push_root):
        raise FileNotFoundError(f"push directory not found: {push_root}")
    names, skipped = [], {}
    for entry in sorted(os.scandir(push_root), key=lambda e: e.name):
        shown = os.fsencode(entry.name).decode("utf-8", "backslashreplace")
        if not entry.is_dir():
            skipped[shown] = "a file, not a model folder"
        elif not any(v.is_dir() and re.fullmatch(r"[0-9]+", v.name) for v in os.scandir(entry.path)):
            skipped[shown] = "no version folder (TF Serving loads NAME/<number>/)"
        else:
            check_model_name(entry.name, f"{push_root}: the model folder {shown!r}")
            names.append(entry.name)
    if not names:
        raise ValueError(f"no model folders under {push_root} (skipped: {skipped or 'nothing there'})")
    return names, skipped


@dataclasses.dataclass(frozen=True)
class ServingConfigFiles:
    """What ``write_serving_configs`` wrote: file paths by name, the models, the entries skipped (why)."""

    paths: Dict[str, str]
    models: List[str]
    skipped: Dict[str, str]


def write_serving_configs(push_root: str, output_dir: str, models_mount: str = "/models",
                          batching: Optional[BatchingParameters] = None, image: str = DEFAULT_IMAGE,
                          version_policy: str = "latest", num_latest: int = 1) -> ServingConfigFiles:
    """Writes the five files for the model folders under ``push_root`` (one per pushed model);
    ``models_mount`` is where the container sees ``push_root``."""
    if not posixpath.isabs(models_mount):
        raise ValueError(f"the models mount must be an absolute path in the container, got {models_mount!r}")
    names, skipped = pushed_models(push_root)
    specs = [ModelSpec(name, posixpath.join(models_mount, name), version_policy, num_latest) for name in names]
    local_specs = [dataclasses.replace(s, base_path=os.path.abspath(os.path.join(push_root, s.name))) for s in specs]
    os.makedirs(output_dir, exist_ok=True)   # after the specs' checks: a refused command leaves nothing
    # Values enter the YAML as JSON strings (valid YAML scalars), so ':', '{' or '#' cannot change its structure.
    files = {
        "models.config": models_config_text(specs),
        "models.local.config": models_config_text(local_specs),
        "batching_parameters.txt": (batching or BatchingParameters()).to_text(),
        "monitoring.config": MONITORING_CONFIG,
        "kubernetes.yaml": KUBERNETES_TEMPLATE.format(replicas=2, image=json.dumps(image),
                                                      readiness_path=json.dumps(f"/v1/models/{names[0]}"),
                                                      models_mount=json.dumps(models_mount)),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = os.path.join(output_dir, name)
        with atomic_write(paths[name]) as f:   # TF Serving re-reads models.config while it runs
            f.write(content)
    return ServingConfigFiles(paths, names, skipped)


def _bind_mount(source: str, target: str) -> str:
    # docker's --mount value is one CSV record, so a path holding ',' or '"' is quoted as CSV; -v
    # would split a path holding ':' instead.
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(["type=bind", f"source={source}", f"target={target}", "readonly"])
    return line.getvalue()


def docker_command(push_root: str, config_dir: str, image: str = DEFAULT_IMAGE, models_mount: str = "/models") -> str:
    """The documented command that serves the Pusher output with the official TF Serving image:
    ``push_root`` mounted where ``models.config`` looks for it, quoted for a POSIX shell."""
    return shlex.join([
        "docker", "run", "--rm", "-p", "8500:8500", "-p", "8501:8501",
        "--mount", _bind_mount(os.path.abspath(push_root), models_mount),
        "--mount", _bind_mount(os.path.abspath(config_dir), "/config"),
        image, "--model_config_file=/config/models.config", "--enable_batching=true",
        "--batching_parameters_file=/config/batching_parameters.txt",
        "--monitoring_config_file=/config/monitoring.config", "--file_system_poll_wait_seconds=2"])
