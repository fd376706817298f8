# mlpipe in an image, for a job `container:` or a `docker://` step. The composite action (action.yml) is the
# usual way in: a container cannot see the runner's GPUs, container engine or Python environment.
#
# Build with the labels filled in (CI does):
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE=https://github.com/OWNER/REPO -t mlpipe .
FROM python:3.12.8-slim-bookworm

ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="mlpipe" \
      org.opencontainers.image.description="CI-native machine-learning pipeline runner" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

# git: snapshots, provenance and dirty-run refs. The checkout is mounted from the host and belongs to the
# runner's user, not to the container's: git must not refuse it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner ./runner
RUN pip install --no-cache-dir . \
    && rm -rf /src

# No USER: GitHub runs a `docker://` step and a job `container:` as the image's user, with the workspace,
# GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and HOME (/github/home) bind-mounted from the runner and owned by the
# runner's user; a fixed non-root uid cannot write them unless it happens to be that user's
# (tests/github/test_image.py shows what breaks). GitHub's documentation asks Docker actions not to set USER
# for this reason. Outside Actions, run it as yourself: docker run --user "$(id -u):$(id -g)" ...
WORKDIR /workspace
ENTRYPOINT ["mlpipe"]
CMD ["--help"]
