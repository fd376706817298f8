# mlpipe in an image, for a job `container:` or a `docker://` step. The composite action (action.yml) is the
# usual way in: a container cannot see the runner's GPUs, container engine or Python environment.
FROM python:3.12.8-slim-bookworm

# git: snapshots, provenance and dirty-run refs. A checkout mounted from the host belongs to another uid.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*'

WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner ./runner
RUN pip install --no-cache-dir . \
    && rm -rf /src \
    && groupadd --gid 1001 mlpipe \
    && useradd --create-home --uid 1001 --gid 1001 --shell /usr/sbin/nologin mlpipe

USER 1001:1001
WORKDIR /workspace
ENTRYPOINT ["mlpipe"]
CMD ["--help"]
