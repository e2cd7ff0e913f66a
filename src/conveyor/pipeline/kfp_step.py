"""The one Kubeflow Pipelines component every generated KFP task runs: ``conveyor pipeline run --step``.

KFP ships a lightweight component's function source inside the compiled IR, so this function is
self-contained (its imports inside it) and is the whole of what runs in the pod: get the project
(``git clone`` of ``source`` at ``revision``, or the image's working directory when ``source`` is
empty), write the step records of the tasks it follows into its ``--state`` folder, run its steps
with the same command the GitHub workflow runs, and return the step records for the tasks after it.

What travels from task to task is only those records (each step's outcome and outputs: a model
as ``name:version`` with its ``sha256`` digest, an image by reference), a JSON string of a few
kilobytes.  Never files: a model travels through the model registry, which every task reaches
with its own credentials, and an image through the container registry, as in the GitHub
workflow.  Files a step leaves in ``$CONVEYOR_ARTIFACTS`` stay in its pod.  A parameter, not a
KFP artifact: KFP's local runner and its ``ignore_upstream_failure`` take optional parameters
where they refuse optional artifacts.  A task whose step failed passes no records on.
``conveyor.pipeline.kfp`` lays the tasks out; this module needs nothing but the standard library
(the image has Conveyor installed: a task installs nothing).
"""

# no ``from __future__ import annotations``: KFP reads the annotations as types

MAX_UPSTREAM = 6  # the tasks one task can follow directly (each passes its step records in)


def conveyor_step(
    pipeline: str,
    steps: list,
    params: dict,
    source: str,
    revision: str,
    after_1: str = "",
    after_2: str = "",
    after_3: str = "",
    after_4: str = "",
    after_5: str = "",
    after_6: str = "",
) -> str:
    import json
    import os
    import shutil
    import subprocess
    import tempfile

    project = os.getcwd()
    clone = ""
    if source:
        clone = tempfile.mkdtemp(prefix="conveyor-")
        project = os.path.join(clone, "project")
        subprocess.run(["git", "clone", "--quiet", source, project], check=True)
        if revision:
            subprocess.run(["git", "-C", project, "checkout", "--quiet", revision], check=True)
    try:
        folder = os.path.join(project, ".conveyor-ci")
        records = os.path.join(folder, "steps")
        os.makedirs(records, exist_ok=True)
        for upstream in (after_1, after_2, after_3, after_4, after_5, after_6):
            for step, record in (json.loads(upstream) if upstream else {}).items():
                if "/" in step or step.startswith("."):  # a step name, never a path
                    raise ValueError(f"unexpected step name {step!r} in the state passed in")
                with open(os.path.join(records, f"{step}.json"), "w") as out:
                    json.dump(record, out)
        for step in steps:
            command = ["conveyor", "pipeline", "run", pipeline, "--step", step, "--state", folder]
            for key, value in params.items():
                command += ["--param", f"{key}={value}"]
            print("+", " ".join(command), flush=True)
            if subprocess.run(command, cwd=project).returncode != 0:
                raise RuntimeError(f"conveyor pipeline {pipeline}: step {step} failed")
        passed = {}
        for name in sorted(os.listdir(records)):
            if name.endswith(".json"):
                with open(os.path.join(records, name)) as record:
                    passed[name[: -len(".json")]] = json.load(record)
        return json.dumps(passed, separators=(",", ":"))
    finally:
        if clone:  # the clone and what its steps fetched (a model) go with the task
            shutil.rmtree(clone, ignore_errors=True)
