"""The Kubeflow Pipelines v2 spec can run in a cluster: remote roots kept verbatim, nothing of the
compiling machine in it, every image path and module reference resolves in the layout the
Dockerfile creates, Beam options reach every Beam-powered component, a schedule is emitted."""
import ast
import json
import os
import re

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from rw_tf.cli.main import main as cli_main
from rw_tf.errors import UserError
from rw_tf_pipeline.configs import PipelineConfig
from rw_tf_pipeline.kubeflow_runner import IMAGE_ROOT, check_cron, compile_kubeflow, foreign_paths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEAM_COMPONENTS = ("FileBasedExampleGen", "StatisticsGen", "Transform", "Evaluator")
DATAFLOW = ["--runner=DataflowRunner", "--project=my-project", "--region=us-central1",
            "--temp_location=gs://bucket/tmp"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp") / "not" / "yet" / "there"      # created by the compiler
    config_file = out.parent.parent.parent / "cfg.json"
    config_file.write_text(json.dumps({"extra_beam_args": DATAFLOW, "web_inputs": ["gs://bucket/crawl/*.warc.gz"]}))
    assert cli_main(["pipeline", "compile", "--target", "kubeflow", "--config", str(config_file), "--image",
                     "example.com/rw-tf:1", "--pipeline-root", "gs://bucket/rw-tf", "--output-dir", str(out),
                     "--schedule", "30 2 * * 1"]) == 0
    return out


def dockerfile_layout():
    """(base image, the folder the repository is copied to) as the Dockerfile says."""
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
    workdir = re.search(r"^WORKDIR\s+(\S+)", text, re.M).group(1)
    assert re.search(r"^COPY \. \.$", text, re.M) and re.search(r"pip install[^\n]* \.(\s|$)", text)
    return base, workdir


def module_file(dotted: str):
    """The repository file of an installed module path (setup.py's package_dir mapping), or None."""
    setup = open(os.path.join(ROOT, "setup.py")).read()
    mapping = ast.literal_eval(re.search(r"package_dir=(\{[^}]*\})", setup).group(1))
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        top, rest = parts[0], parts[1:cut]
        folder = mapping.get(top, top)
        path = os.path.join(ROOT, folder, *rest) + ".py"
        if os.path.exists(path):
            return path, parts[cut:]
    return None, parts


def test_spec_names_nothing_of_this_machine_and_resolves_in_the_image(compiled):
    spec_file = compiled / "rw-tf-recipe.json"
    text = spec_file.read_text()
    assert foreign_paths(text) == {"paths_of_this_machine": [], "mangled_uris": []}
    assert str(ROOT) not in text and os.getcwd() not in text
    base, workdir = dockerfile_layout()
    assert base == "gcr.io/tfx-oss-public/tfx:1.16.0" and workdir == IMAGE_ROOT
    image_paths = set(re.findall(re.escape(IMAGE_ROOT) + r"/[A-Za-z0-9_./\-]+", text))
    assert image_paths, "the spec reads its schemas from the image"
    for path in image_paths:   # the repository is copied to the WORKDIR, so each maps to a repo file
        assert os.path.exists(os.path.join(ROOT, path[len(IMAGE_ROOT) + 1:])), path
    # Module paths only: "title: rw_tf.RefinedCorpus" is an artifact type's KFP schema title.
    titles = set(re.findall(r"title: (rw_tf[A-Za-z0-9_.]*)", text))
    references = set(re.findall(r"rw_tf[a-z_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+", text)) - titles
    assert titles == {"rw_tf.RefinedCorpus"}
    assert {"rw_tf_pipeline.modules.trainer.run_fn", "rw_tf_pipeline.modules.pretrain_transform.preprocessing_fn",
            "rw_tf_pipeline.modules.finetune_transform.preprocessing_fn"} <= references
    for reference in references:
        path, attributes = module_file(reference)
        assert path is not None, reference
        names = {n.name for n in ast.parse(open(path).read()).body if hasattr(n, "name")}
        assert not attributes or attributes[0] in names or attributes[0].endswith("_Executor"), reference
    for uri in set(re.findall(r"gs:/*[A-Za-z0-9_./\-*]+", text)):
        assert uri.startswith("gs://bucket/"), uri


def test_spec_round_trips_and_gates_fine_tuning_on_the_blessing(compiled):
    raw = json.loads((compiled / "rw-tf-recipe.json").read_text())
    job = json_format.ParseDict(raw, pipeline_spec_pb2.PipelineJob())
    spec = json_format.ParseDict(json_format.MessageToDict(job.pipeline_spec), pipeline_spec_pb2.PipelineSpec())
    tasks = set(spec.root.dag.tasks)
    for stage in ("pretrain", "finetune"):
        assert {f"{c}_{stage}" for c in ("FileBasedExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                                         "AnomaliesGate", "Transform", "Trainer", "Evaluator", "Pusher")} <= tasks
    assert "PrepareData" in tasks
    # RefineWebData and PrepareData run every time (new or edited files under the same URIs are read);
    # the rest may be cached, ExampleGen after its pre-cache driver fingerprints the data folders.
    caching = {name: task.caching_options.enable_cache for name, task in spec.root.dag.tasks.items()
               if task.HasField("caching_options")}
    assert not caching.pop("PrepareData") and not caching.pop("RefineWebData") and all(caching.values())
    assert "preCacheCheck" in json.dumps(raw["pipelineSpec"]["deploymentSpec"]["executors"][
        "FileBasedExampleGen_pretrain_executor"])
    condition = spec.root.dag.tasks["Trainer_finetune"].trigger_policy.condition
    assert "Evaluator_pretrain" in condition and "blessed" in condition
    executors = raw["pipelineSpec"]["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values() if "container" in e} == {"example.com/rw-tf:1"}


def test_beam_options_reach_every_beam_component_unchanged(compiled):
    executors = json.loads((compiled / "rw-tf-recipe.json").read_text())["pipelineSpec"]["deploymentSpec"]["executors"]
    for stage in ("pretrain", "finetune"):
        for component in BEAM_COMPONENTS:
            args = " ".join(executors[f"{component}_{stage}_executor"]["container"]["args"])
            assert all(option in args for option in DATAFLOW), (component, stage)
    # The web refinement before PrepareData runs on the same Beam options (Dataflow here).
    refine = " ".join(executors["RefineWebData_executor"]["container"]["args"])
    assert all(option in refine for option in DATAFLOW)


def test_schedule_file_has_what_a_recurring_run_needs(compiled):
    schedule = json.loads((compiled / "rw-tf-recipe.schedule.json").read_text())
    assert schedule["cron_expression"] == "30 2 * * 1" and schedule["kfp_cron_expression"] == "0 30 2 * * 1"
    assert schedule["pipeline_root"] == "gs://bucket/rw-tf"
    assert schedule["pipeline_package_path"].endswith("rw-tf-recipe.json")


@pytest.mark.parametrize("cron, message", [
    ("99 * * * *", "minute '99' is outside 0-59"), ("0 24 * * *", "hour '24' is outside 0-23"),
    ("0 0 0 * *", "day of month '0' is outside 1-31"), ("0 0 * 13 *", "month '13' is outside 1-12"),
    ("0 0 * * 8", "day of week '8' is outside 0-7"), ("0 0 * foo *", "month 'foo' is outside"),
    ("5-1 * * * *", "'5-1' is an empty range"), ("*/0 * * * *", "a step below 1"),
    ("0 0 ? * 1", "'?' is not *, a value"), ("1,,2 * * * *", "'' is not *"), ("* * * *", "5-field"),
])
def test_schedules_no_scheduler_can_run_are_refused(tmp_path, capsys, cron, message):
    """Each was written into the schedule file, for KFP or Vertex AI to reject (or never fire) later."""
    assert cli_main(["pipeline", "compile", "--output-dir", str(tmp_path), "--schedule", cron,
                     "--pipeline-root", "gs://bucket/rw-tf"]) == 2
    assert message in capsys.readouterr().err and not list(tmp_path.iterdir())
    for good in ("*/15 0-6,22 1 jan-mar mon-fri", "59 23 31 12 7", "0 3 * * *"):
        check_cron(good)


def test_paths_of_this_machine_are_refused(tmp_path, capsys):
    with pytest.raises(UserError, match="alias_file=/srv/aliases.tsv"):
        compile_kubeflow("recipe", PipelineConfig(alias_file="/srv/aliases.tsv", knowledge_dir="gs://b/kg"),
                         str(tmp_path / "x.json"), pipeline_root="gs://bucket/rw-tf")
    with pytest.raises(UserError, match="path of this machine"):
        compile_kubeflow("recipe", PipelineConfig(root=str(tmp_path)), str(tmp_path / "x.json"))
    with pytest.raises(UserError, match="web_inputs=/data/crawl.warc.gz"):
        compile_kubeflow("recipe", PipelineConfig(web_inputs=["/data/crawl.warc.gz"]), str(tmp_path / "x.json"),
                         pipeline_root="gs://bucket/rw-tf")
    # Your data files: a user error naming each, not a spec that fails its check (an unexpected error).
    (tmp_path / "rows.jsonl").write_text("{}")
    files = {field: str(tmp_path / "rows.jsonl") for field in PipelineConfig.user_file_fields}
    with pytest.raises(UserError) as err:
        compile_kubeflow("qa", PipelineConfig(**files), str(tmp_path / "x.json"), pipeline_root="gs://bucket/rw-tf")
    assert str(err.value).count(f"_file={tmp_path / 'rows.jsonl'}") == len(files) == 8
    with pytest.raises(UserError, match="needs pretrained_model_uri"):
        compile_kubeflow("finetune", PipelineConfig(), str(tmp_path / "x.json"), pipeline_root="gs://bucket/rw-tf")
    assert cli_main(["pipeline", "compile", "--kind", "finetune", "--pipeline-root", "gs://bucket/rw-tf",
                     "--output-dir", str(tmp_path)]) == 2
    assert "hint" in capsys.readouterr().err
