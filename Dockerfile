# qpumesh images: one Dockerfile, one target per service.
#
#   node         one emulated QPU behind gRPC (qpumesh.v1.QPUNode + NodeAdmin + grpc.health.v1)
#   coordinator  job service, planner, training, node mesh (qpumesh.v1.Coordinator + health),
#                with its SQLite job store and checkpoints under QPUMESH_DATA_DIR (a volume)
#
# Needs BuildKit (the default builder of Docker 23+; with Docker 20.10 set DOCKER_BUILDKIT=1).
# Build from the repo root (the build context):
#   docker build --target node -t qpumesh-node .
#   docker build --target coordinator -t qpumesh-coordinator .
# Offline, from a host-built wheelhouse in build/wheelhouse (see docs/docker.md):
#   docker build --target node -t qpumesh-node \
#     --build-arg BASE_IMAGE=qpumesh-base:bookworm \
#     --build-arg PIP_INSTALL_ARGS="--no-index --find-links=/wheelhouse" .
#
# Both targets share every stage up to `runtime`: the second image reuses the first one's layers.
ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- wheelhouse (optional)
# The host-built wheels of build/wheelhouse, or nothing but pyproject.toml when there is
# none (build/wheelhous[e] then matches nothing). Bind-mounted into the RUN steps below,
# so the wheels never become an image layer.
FROM scratch AS wheelhouse
COPY pyproject.toml build/wheelhous[e] /

# ---------------------------------------------------------------- wheel: the qpumesh wheel
FROM ${BASE_IMAGE} AS wheel
ARG PIP_INSTALL_ARGS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    python3 -m venv /opt/build && /opt/build/bin/pip install ${PIP_INSTALL_ARGS} "setuptools>=69"
COPY setup.py pyproject.toml README.md /src/
COPY protos/python /src/protos/python
COPY services/qpu_node/qpumesh /src/services/qpu_node/qpumesh
COPY services/coordinator/qpumesh /src/services/coordinator/qpumesh
COPY client/qpumesh /src/client/qpumesh
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /dist /src

# ---------------------------------------------------------------- runtime: what both services share
FROM ${BASE_IMAGE} AS runtime
# Extra pip arguments for every install, e.g. "--no-index --find-links=/wheelhouse".
ARG PIP_INSTALL_ARGS=""
# Where torch comes from when the index is used: the CPU build (PyPI's is the CUDA one).
ARG TORCH_INDEX_ARGS="--index-url https://download.pytorch.org/whl/cpu"
ARG TORCH_SPEC="torch==2.13.0"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
RUN (getent group qpumesh || groupadd --system --gid 10001 qpumesh) \
 && (getent passwd qpumesh || useradd --system --uid 10001 --gid qpumesh --create-home \
      --home-dir /home/qpumesh --shell /usr/sbin/nologin qpumesh)
# torch first (the CPU build), then the declared dependencies: these layers change only
# with pyproject.toml or the wheelhouse. torch's C++ headers, C++ test binaries and build
# tools are not needed at run time (~190 MB).
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    python3 -m venv /opt/venv \
 && pip install ${PIP_INSTALL_ARGS} ${TORCH_INDEX_ARGS} "${TORCH_SPEC}" \
 && cd /opt/venv/lib/python3*/site-packages/torch \
 && rm -rf include test && find bin -mindepth 1 ! -name torch_shm_manager -exec rm -rf {} +
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    python3 -c "import tomllib; d = tomllib.load(open('/wheelhouse/pyproject.toml', 'rb')); \
print('\n'.join(d['project']['dependencies']))" >/tmp/requirements.txt \
 && pip install ${PIP_INSTALL_ARGS} -r /tmp/requirements.txt && rm /tmp/requirements.txt
# [tool.qpumesh] no-deps (mitiq, ZNE at the node): without their dependency pins (pyproject.toml).
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    python3 -c "import tomllib; d = tomllib.load(open('/wheelhouse/pyproject.toml', 'rb')); \
print('\n'.join(d['tool']['qpumesh']['no-deps']))" >/tmp/no-deps.txt \
 && pip install ${PIP_INSTALL_ARGS} --no-deps -r /tmp/no-deps.txt && rm /tmp/no-deps.txt
RUN --mount=type=bind,from=wheel,source=/dist,target=/dist \
    pip install --no-index --no-deps /dist/*.whl \
 && python -c "import qpumesh.node, qpumesh.coordinator, qpumesh.client, qpumesh.v1, torch, cirq, qsimcirq"
# matplotlib's font cache (cirq imports matplotlib), built once here instead of at every
# container start; writable by the service user.
ENV MPLCONFIGDIR=/opt/matplotlib
RUN python -c "import matplotlib.font_manager" && chown -R qpumesh:qpumesh /opt/matplotlib
# numba compiles the node's kernels on first use: tens of CPU seconds, paid by every new
# container (minutes when several start at once on a busy host, and Swarm kills a task
# whose health check does not pass in time). Compile them once here, into a cache in the
# image; a host whose CPU differs from the build host's recompiles into the same
# (writable) directory.
ENV NUMBA_CACHE_DIR=/opt/numba-cache
RUN python -c "from qpumesh.node.backends.compiled import warm_up; warm_up()" \
 && chown -R qpumesh:qpumesh /opt/numba-cache
COPY scripts/healthcheck.py /usr/local/bin/qpumesh-healthcheck
# Where a compose/Kubernetes deployment mounts the mesh's certificates (docs/security.md);
# owned by the service user so a fresh named volume is writable by `qpumesh certs init`.
RUN mkdir -p /certs && chown qpumesh:qpumesh /certs
# Secret values from files (QPUMESH_ADMIN_TOKEN_FILE, QPUMESH_TOKEN_FILE: Swarm and
# Kubernetes secrets), then `exec` of the command: see scripts/docker-entrypoint.sh.
COPY --chmod=0755 scripts/docker-entrypoint.sh /usr/local/bin/qpumesh-entrypoint
ENTRYPOINT ["/usr/local/bin/qpumesh-entrypoint"]
WORKDIR /home/qpumesh
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "/usr/local/bin/qpumesh-healthcheck"]

# ---------------------------------------------------------------- node
FROM runtime AS node
# Node settings (read by `qpumesh node serve`; see docs/docker.md for the full list).
ENV QPUMESH_HOST=0.0.0.0 \
    QPUMESH_PORT=50051
USER qpumesh
EXPOSE 50051
CMD ["qpumesh", "node", "serve"]

# ---------------------------------------------------------------- coordinator
FROM runtime AS coordinator
# Coordinator settings (read by `qpumesh coordinator serve`; see docs/docker.md).
# QPUMESH_NODES: comma-separated HOST:PORT list, or dns:NAME:PORT = every A record of NAME.
ENV QPUMESH_HOST=0.0.0.0 \
    QPUMESH_PORT=50050 \
    QPUMESH_DATA_DIR=/data \
    QPUMESH_NODES=dns:qpu:50051
RUN mkdir -p /data && chown qpumesh:qpumesh /data
USER qpumesh
VOLUME /data
EXPOSE 50050
CMD ["qpumesh", "coordinator", "serve"]
