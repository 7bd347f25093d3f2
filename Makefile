# hand_recon_ros: `make demo` runs the main job on the CPU default, `make test` runs the tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
# ROS 2 wheels to set up and test on: kilted (default: .venv, build/, install/) or jazzy (.venv-jazzy, *-jazzy/).
ROS_DISTRO ?= kilted
export ROS_DISTRO

.PHONY: help setup demo test lint bench parity gpu-check clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:  ## create .venv, install ROS 2 wheels + deps, build hand_recon_msgs, fetch model files
	@bash $(ROOT)/scripts/setup.sh

demo: setup  ## the main job on the CPU default: make demo INPUT=image|folder|video (else /dev/video0)
	@INPUT="$(INPUT)" bash $(ROOT)/scripts/demo.sh

lint: setup  ## ruff
	@source $(ROOT)/env.sh && ruff check $(ROOT)

test: setup lint  ## ruff + pytest (real rclpy over Fast DDS, real ONNX Runtime, real weights)
	@source $(ROOT)/env.sh && cd $(ROOT)/hand_recon_ros && python -m pytest test $(PYTEST_ARGS)

bench: setup  ## per-stage timings on INPUT=... (default: ../shared/data/woman_hands.jpg)
	@source $(ROOT)/env.sh && hand-recon bench $(or $(INPUT),$(ROOT)/../shared/data/woman_hands.jpg) --mode image \
	  && hand-recon bench $(or $(INPUT),$(ROOT)/../shared/data/woman_hands.jpg) --mode video

parity: setup  ## TFLite vs torch vs ONNX Runtime parity and latency report
	@source $(ROOT)/env.sh && python $(ROOT)/benchmarks/parity_report.py --variant all

gpu-check:  ## NVIDIA GPU machines only: GPU tests, engines built twice, bench per backend and precision, one table
	@bash $(ROOT)/scripts/gpu_check.sh $(INPUT)

clean:  ## remove build products (keeps the model cache)
	rm -rf $(ROOT)/build $(ROOT)/install $(ROOT)/log $(ROOT)/.venv \
	  $(ROOT)/build-jazzy $(ROOT)/install-jazzy $(ROOT)/log-jazzy $(ROOT)/.venv-jazzy
