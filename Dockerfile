# syntax=docker/dockerfile:1
#
# comfy-init on RunPod's PyTorch image.  ComfyUI, its Python environment and the models stay
# on the network volume (/workspace/ComfyUI), as users keep them; the image adds only
# comfy-init: a venv in /opt/comfy-init, /init as ENTRYPOINT (PID 1), and its config in
# /etc/comfy-init.  Every path here is listed in image/layout.toml, which
# tests/test_image_layout.py lays out and boots; change both together.
#
#   docker build -t comfy-init .
#   (the tests build it with podman on a local bookworm base: image/make-base)
#
# The base: CUDA 12.8.1 + PyTorch 2.8.0 on Ubuntu 22.04, the image behind RunPod's PyTorch
# templates.  Its coreutils (8.32) has `env -S --block-signal`, which /init's shebang uses,
# and it has Python 3.11 (with venv) for comfy-init, curl for the health check, and the sshd
# (host keys removed) and JupyterLab that /init runs as RunPod's own start script would.
# This file adds no build tools to it (the compilers of the CUDA devel base stay, for custom
# nodes that build extensions); pip's build of the wheel happens in the builder stage only.
ARG BASE_IMAGE=runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2204

# ---- builder: the wheel and the venv; pip, its downloads and the wheel stay in this stage.
FROM ${BASE_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# The package's supervisord template is a link to the top-level file, hence that file here.
COPY pyproject.toml README.md supervisord.conf.j2 ./
COPY src ./src
RUN python3.11 -m pip wheel --no-cache-dir --no-deps --wheel-dir /dist .
COPY image/build-venv image/requirements.lock ./image/
RUN image/build-venv python3.11 /opt/comfy-init image/requirements.lock /dist/comfy_init-*.whl

# ---- the image: the base plus the venv, /init and the config files.
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="comfy-init" \
      org.opencontainers.image.description="ComfyUI pod init: warms models from the network volume to local NVMe, runs ComfyUI under supervisord with Prometheus metrics" \
      org.opencontainers.image.licenses="MIT"
COPY --from=builder /opt/comfy-init /opt/comfy-init
COPY supervisord.conf.j2 warmup_models.conf /etc/comfy-init/
COPY init /init
# `docker exec <pod> comfy-init warmup --status` and `... supervisorctl restart comfyui`;
# the venv's bin stays off PATH so python3 and pip remain the base image's.
RUN ln -s /opt/comfy-init/bin/comfy-init /usr/local/bin/comfy-init \
 && ln -s /opt/comfy-init/bin/supervisorctl /usr/local/bin/supervisorctl

# ComfyUI's HTTP port and the metrics sidecar (/metrics, /healthz, /readyz).
EXPOSE 8188 9188
# The sidecar answers /healthz once supervisord runs; a blocking warmup comes first, so the
# start period covers a long warmup (a success ends it early).  /healthz needs no password;
# with TLS in METRICS_WEB_CONFIG the port speaks HTTPS only (plain HTTP gets 400), hence the
# second try (-k: loopback, the certificate names the pod's public address).
HEALTHCHECK --interval=30s --timeout=5s --start-period=1h --retries=3 \
  CMD ["/bin/sh", "-c", "curl -fs -o /dev/null http://127.0.0.1:${METRICS_PORT:-9188}/healthz || curl -fsSk -o /dev/null https://127.0.0.1:${METRICS_PORT:-9188}/healthz || exit 1"]
ENTRYPOINT ["/init"]
