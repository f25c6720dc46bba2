# CPU serving image: ONNX Runtime only (no torch), the bundled default model, `tailor serve` on :8000.
# For training or GPU serving build with --build-arg EXTRAS=train (adds torch and its CUDA libraries).
FROM python:3.11-slim

ARG EXTRAS=""
ENV NO_ALBUMENTATIONS_UPDATE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TAILOR_HOST=0.0.0.0 \
    TAILOR_PORT=8000 \
    TAILOR_DATA_DIR=/data
# Bound to 0.0.0.0, write routes (corrections, batches, model activation) answer 403 until
# TAILOR_API_TOKENS is set; predicting needs no token.

WORKDIR /app
COPY pyproject.toml README.md ./
COPY training ./training
COPY service ./service
COPY models ./models
RUN pip install ".${EXTRAS:+[$EXTRAS]}"

RUN useradd --create-home tailor && mkdir -p /data && chown tailor /data
# The database, stored images and masks, the model store and batch jobs' files: keep them on a volume.
VOLUME /data
USER tailor
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/v1/health/ready').status != 200)"
CMD ["tailor", "serve"]
