# syntax=docker/dockerfile:1
# The worker image: a CUDA 12 base, one virtual env (/opt/venv) holding exactly the hashed lock
# image/requirements.lock (the cu126 torch set, ComfyUI's requirements, the worker's libraries;
# no triton, see docs/deploy.md) less the files image/trim.txt names (kernels for CUDA 13 and
# ROCm, test suites, headers, build tools: 0.37 GB that nothing loads on the L4), ComfyUI's
# source at a pinned release (/opt/comfyui), the worker (/app). No models: they come from a GCS
# volume mount or a manifest download (docs/deploy.md).
#
# The base image, the ComfyUI source and the wheel index are build arguments, so the same file
# builds offline in scripts/check-deploy --image (a debootstrap'd Debian base, a local git daemon).

# "base" flavour: CUDA's runtime libraries come with the torch wheels, so the bigger "runtime"
# flavour would ship a second copy of cuBLAS/cuDNN. The L4 driver (535) is mounted by Cloud Run.
ARG BASE_IMAGE=nvidia/cuda:12.6.3-base-ubuntu24.04

FROM ${BASE_IMAGE} AS build
ARG PIP_INDEX_URL=https://pypi.org/simple
# Optional CA bundle for pip behind a TLS-intercepting proxy (the offline build mounts the host's).
ARG PIP_CERT
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_INDEX_URL=${PIP_INDEX_URL}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Unpinned apt packages on purpose: the base tag pins the distribution, and its security
# updates are wanted (hadolint DL3008 is skipped for this reason in scripts/check-deploy).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
# The whole Python set first: the biggest layer, and it changes least often. --no-deps: the lock
# is complete (and leaves triton out on purpose, which torch's metadata asks for).
COPY image/requirements.lock /src/image/requirements.lock
RUN /opt/venv/bin/pip install --no-deps --require-hashes -r /src/image/requirements.lock
# Leave out what nothing loads on the L4 with this set (image/trim.txt says why, entry by entry;
# an entry that matches nothing fails the build). Only the trimmed venv reaches the runtime stage.
COPY image/trim.txt image/trim.py /src/image/
RUN /opt/venv/bin/python /src/image/trim.py /src/image/trim.txt
# Fail the build if anything the worker's start-up imports crashes at import in this (trimmed) set.
COPY image/startup-imports.txt /src/image/startup-imports.txt
COPY tests/deploy/startup_imports.py /src/image/startup_imports.py
RUN /opt/venv/bin/python /src/image/startup_imports.py check /src/image/startup-imports.txt
# ComfyUI's arguments only here: buildah counts a build argument in the cache key of every RUN
# after its ARG line, so another source or node list rebuilds from this step on, not the venv.
ARG COMFYUI_REPO=https://github.com/comfyanonymous/ComfyUI.git
ARG COMFYUI_REF=v0.33.0
ARG COMFYUI_COMMIT=2f35f4a08176d993cded35dac3332be4f7287f41
# Space-separated URL@COMMIT list of custom nodes (none by default).
ARG CUSTOM_NODES=
COPY scripts/install-comfyui /src/scripts/install-comfyui
# The stage's SHELL is bash (above); hadolint forgets it after the ARG lines and reads this
# RUN as POSIX sh.
# hadolint ignore=SC3054
RUN nodes=(); for n in ${CUSTOM_NODES}; do nodes+=(--custom-node "$n"); done; \
    /src/scripts/install-comfyui --dir /opt/comfyui \
      --repo "${COMFYUI_REPO}" --ref "${COMFYUI_REF}" --commit "${COMFYUI_COMMIT}" "${nodes[@]}" \
 && /opt/venv/bin/python -m compileall -q /opt/comfyui

FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# git stays: custom nodes and ComfyUI's version reporting call it at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --user-group worker \
 && git config --system --add safe.directory /opt/comfyui \
 && git config --system --add safe.directory '/opt/comfyui/custom_nodes/*'
COPY --from=build /opt/venv /opt/venv
# Owned by the runtime user: ComfyUI writes its user/ and temp/ folders next to its code, and git
# refuses ("dubious ownership") a checkout owned by someone else.
COPY --from=build --chown=worker:worker /opt/comfyui /opt/comfyui
COPY --chown=worker:worker worker /app/worker
COPY --chown=worker:worker pipelines /app/pipelines
COPY --chown=worker:worker main.py /app/main.py
RUN /opt/venv/bin/python -m compileall -q /app
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COMFYUI_DIR=/opt/comfyui \
    HOME=/home/worker
USER 10001:10001
WORKDIR /app
ENTRYPOINT ["python", "-m", "worker"]
# One image, two shapes: the Cloud Run service (service.yaml) runs this default, HTTP mode;
# the jobs set their own args (jobs.yaml: [run], jobs-dispatch.yaml: [dispatch]).
CMD ["serve"]
