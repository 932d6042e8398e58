"""A component that fails the run when ExampleValidator found anomalies.

TFX's ExampleValidator only *records* anomalies; nothing downstream depends on them (see
tfx-addons#153). Transform is made to depend on this gate, so a schema anomaly (missing or renamed
feature, wrong type, out-of-domain value) stops the pipeline before any training, with the
anomalies in the error message.
"""

import os

from tfx import v1 as tfx
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import ExampleAnomalies

from rw_tf_pipeline.errors import DataAnomaliesError


def describe_anomalies(anomalies_uri: str) -> list:
    """One line per anomaly across all splits of an ExampleAnomalies artifact."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    lines = []
    for split in sorted(os.listdir(anomalies_uri)):
        path = os.path.join(anomalies_uri, split, "SchemaDiff.pb")
        if not os.path.exists(path):
            continue
        anomalies = anomalies_pb2.Anomalies()
        with open(path, "rb") as f:
            anomalies.ParseFromString(f.read())
        for feature, info in sorted(anomalies.anomaly_info.items()):
            lines.append(f"[{split.replace('Split-', '')}] feature {feature!r}: {info.short_description} "
                         f"({info.description})")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"[{split.replace('Split-', '')}] dataset: {info.short_description} ({info.description})")
    return lines


@component
def AnomaliesGate(anomalies: tfx.dsl.components.InputArtifact[ExampleAnomalies]) -> None:  # noqa: N802
    """Raises ``DataAnomaliesError`` listing every anomaly; passes when there are none."""
    found = describe_anomalies(anomalies.uri)
    if found:
        raise DataAnomaliesError("ExampleValidator found schema anomalies; the run is stopped before "
                                 "Transform:\n  " + "\n  ".join(found))
