# hand_recon_ros: `make demo` runs the main job on the CPU default, `make test` runs the tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: help setup test lint clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:  ## create .venv, install ROS 2 wheels + deps, build hand_recon_msgs, fetch model files
	@bash $(ROOT)/scripts/setup.sh

lint: setup  ## ruff
	@source $(ROOT)/env.sh && ruff check $(ROOT)/hand_recon_ros $(ROOT)/scripts

test: setup lint  ## ruff + pytest (real rclpy over Fast DDS, real ONNX Runtime, real weights)
	@source $(ROOT)/env.sh && cd $(ROOT)/hand_recon_ros && python -m pytest test $(PYTEST_ARGS)

clean:  ## remove build products (keeps the model cache)
	rm -rf $(ROOT)/build $(ROOT)/install $(ROOT)/log $(ROOT)/.venv
