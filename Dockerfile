# syntax=docker/dockerfile:1

FROM python:3.11-slim AS builder

# Same minor version of uv that wrote uv.lock: older releases may not read
# a newer lockfile revision, and `--frozen` must use the lock exactly.
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /uvx /bin/

# Bytecode is compiled at build time so containers do not race to write it at
# start-up (and cannot, as the runtime user does not own the venv). Copy mode
# because the cache mount and the venv are on different filesystems. The
# image's own interpreter is the one the runtime stage has, so never fetch one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never

WORKDIR /app

# Dependencies first, in their own layer, so editing source code does not
# reinstall them. --no-default-groups leaves the embedded dev servers and the
# test tooling out of the image.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-install-project --no-default-groups

COPY command_api ./command_api
COPY query_api ./query_api
COPY projectors ./projectors
COPY relay ./relay
COPY shared ./shared
COPY contexts ./contexts
COPY migrations ./migrations
COPY devstack ./devstack
COPY operator_cli ./operator_cli
# --no-editable installs the project as a wheel into the venv, so the runtime
# stage needs the venv alone and not the source tree.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-editable


FROM python:3.11-slim

# A fixed uid, so operators can grant it file secrets (see compose.yaml).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app

WORKDIR /app
# Root-owned on purpose: the app has no business rewriting its own code.
COPY --from=builder /app/.venv /app/.venv

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1

USER app

EXPOSE 8000 8001

CMD ["cqrs", "--help"]
