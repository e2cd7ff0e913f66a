"""The one Kubeflow Pipelines component every generated KFP task runs: ``conveyor pipeline run --step``.

KFP ships a lightweight component's function source inside the compiled IR, so this function is
self-contained (its imports inside it) and is the whole of what runs in the pod: get the project
(``git clone`` of ``source`` at ``revision``, or the image's working directory when ``source`` is
empty), install Conveyor (``install``, a shell command; empty when the image has it), unpack the
state of the tasks it follows, run its steps with the same command the GitHub workflow runs, and
return the state for the tasks after it (a base64 tar.gz string: KFP's local runner and its
``ignore_upstream_failure`` take optional parameters where they refuse optional artifacts; the
state is step outputs and outcomes, kilobytes).  A task whose step failed passes no state on.
``conveyor.pipeline.kfp`` lays the tasks out; this module needs nothing but the standard library.
"""

# no ``from __future__ import annotations``: KFP reads the annotations as types

MAX_UPSTREAM = 6  # the tasks one task can follow directly (each passes its state in)


def conveyor_step(
    pipeline: str,
    steps: list,
    params: dict,
    source: str,
    revision: str,
    install: str,
    after_1: str = "",
    after_2: str = "",
    after_3: str = "",
    after_4: str = "",
    after_5: str = "",
    after_6: str = "",
) -> str:
    import base64
    import io
    import os
    import subprocess
    import tarfile
    import tempfile

    project = os.getcwd()
    if source:
        project = os.path.join(tempfile.mkdtemp(prefix="conveyor-"), "project")
        subprocess.run(["git", "clone", "--quiet", source, project], check=True)
        if revision:
            subprocess.run(["git", "-C", project, "checkout", "--quiet", revision], check=True)
    if install:
        subprocess.run(install, shell=True, check=True)
    folder = os.path.join(project, ".conveyor-ci")
    os.makedirs(folder, exist_ok=True)
    for upstream in (after_1, after_2, after_3, after_4, after_5, after_6):
        if upstream:
            with tarfile.open(fileobj=io.BytesIO(base64.b64decode(upstream))) as packed:
                packed.extractall(folder, filter="data")
    failed = ""
    for step in steps:
        command = ["conveyor", "pipeline", "run", pipeline, "--step", step, "--state", folder]
        for key, value in params.items():
            command += ["--param", f"{key}={value}"]
        print("+", " ".join(command), flush=True)
        if subprocess.run(command, cwd=project).returncode != 0:
            failed = step
            break
    if failed:
        raise RuntimeError(f"conveyor pipeline {pipeline}: step {failed} failed")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as packed:
        packed.add(folder, arcname=".")
    return base64.b64encode(buffer.getvalue()).decode()
