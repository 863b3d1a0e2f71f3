# sam3-stream service on a CUDA PyTorch runtime. Build: docker build -t sam3-stream .
# Run:  docker run --gpus all -p 127.0.0.1:9001:9001 -v hf-cache:/home/sam3/.cache/huggingface \
#         -e HF_TOKEN=... -e SAM3_STREAM_API_KEY=... sam3-stream
# The server listens on 0.0.0.0 inside the container, so it needs an API key: without
# SAM3_STREAM_API_KEY it exits 2 at start. `docker run ... sam3-stream --insecure-no-auth` serves
# without one (anyone who reaches the port can use it); Host names other than IP addresses and
# localhost need `--allowed-hosts NAME` (DNS rebinding), e.g. behind a proxy.
# Ray (README "Scale-out on Ray"): the same image is a Ray node. Ray uses many ports, so every
# container of the cluster runs with --network host, and the model is at the same path on each:
#   head:   docker run --gpus all --network host -v /models:/models --entrypoint ray sam3-stream \
#             start --head --port 6379 --block
#   worker: docker run --gpus all --network host -v /models:/models --entrypoint ray sam3-stream \
#             start --address HEAD:6379 --block            (one per GPU machine)
#   front door: docker run --network host -v /models:/models -e SAM3_STREAM_API_KEY=... \
#             sam3-stream --ray HEAD:6379 --model /models/sam3
FROM pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HOME=/home/sam3/.cache/huggingface

# OpenCV's GUI build loads libGL and GLib even when no window is opened.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 curl \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 sam3
WORKDIR /opt/sam3-stream
COPY pyproject.toml README.md ./
COPY tracker ./tracker
COPY pipeline ./pipeline
COPY sinks ./sinks
COPY configs ./configs
# torch comes from the base image (its CUDA build); pip keeps it because the range admits it.
# The ray extra: the same image serves in one process, fronts a Ray cluster, or is a Ray node.
RUN pip install ".[ray]"

USER sam3
RUN mkdir -p /home/sam3/.cache/huggingface /home/sam3/state
VOLUME ["/home/sam3/.cache/huggingface", "/home/sam3/state"]
EXPOSE 9001
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9001/healthz || exit 1
ENTRYPOINT ["sam3-stream", "serve", "--host", "0.0.0.0", "--port", "9001", "--state-dir", "/home/sam3/state"]
