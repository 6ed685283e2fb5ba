FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fedblog ./fedblog
RUN pip install --no-cache-dir .
RUN useradd --create-home fedblog && mkdir -p /data && chown fedblog /data
USER fedblog
ENV FEDBLOG_DATA_DIR=/data
EXPOSE 8000
CMD ["fedblog", "serve", "--host", "0.0.0.0", "--port", "8000"]
