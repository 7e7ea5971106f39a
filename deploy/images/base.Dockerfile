# Stand-in for python:3.11-slim-bookworm, for machines that cannot pull it: Debian bookworm
# (minbase, from debootstrap, imported by `make base-image`) plus Debian's Python 3.11.
ARG ROOTFS_IMAGE=localhost/debian:bookworm-minbase
FROM ${ROOTFS_IMAGE}
# checkov:skip=CKV_DOCKER_3: a base image; the service Dockerfile sets USER 10001:10001
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3=3.11.* python3-venv=3.11.* \
       ca-certificates=20230311* \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* /usr/share/doc/* /usr/share/man/*
