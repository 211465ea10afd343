# The exporter as a slim image running as an unprivileged user.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter \
    && mkdir /data && chown 10001 /data
USER 10001
ENV PYTHONUNBUFFERED=1 \
    SIPGATE_EXPORTER_WEB_LISTEN_ADDRESS=:9850 \
    SIPGATE_EXPORTER_STATE_PATH=/data/sipgate-exporter.db
# Statistics and calls in progress survive restarts here.
VOLUME /data
EXPOSE 9850
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9850/-/healthy', timeout=2)"]
ENTRYPOINT ["sipgate-exporter"]
