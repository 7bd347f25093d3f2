"""ament_python package hand_recon_ros: the ROS-free core and the ROS 2 node (colcon and pip both build it)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hand_recon_ros"


def _requirements(name: str) -> list[str]:
    """Read a requirements file from ../requirements when building from the source tree (pip extras)."""
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "requirements", name)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [ln.split("#")[0].strip() for ln in fh if ln.split("#")[0].strip()]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    package_data={PACKAGE: ["config/*.yaml", "config/*.xml"], f"{PACKAGE}.training": ["configs/*.yaml"]},
    install_requires=["setuptools"],
    extras_require={
        # pip-only Python dependencies (rosdep has no key for them); `pip install .[runtime]` on a robot
        "runtime": _requirements("runtime.txt"),
        "torch": _requirements("torch.txt"),
        "dev": _requirements("dev.txt"),
        "teleop": _requirements("teleop.txt"),  # robot-hand retargeting (dex-retargeting)
    },
    zip_safe=True,
    maintainer="hand_recon_ros maintainers",
    maintainer_email="maintainers@hand-recon-ros.dev",
    description="Real-time two-hand 3D reconstruction for ROS 2 (ONNX Runtime CPU default, TensorRT on GPUs).",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "hand-recon = hand_recon_ros.cli:main",
            "hand_recon_node = hand_recon_ros.ros.node:main",
            "hand_recon_lifecycle_node = hand_recon_ros.ros.lifecycle_node:main",
        ],
    },
)
