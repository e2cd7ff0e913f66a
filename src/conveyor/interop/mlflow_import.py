"""An MLflow model version, fetched and made ready for ``conveyor models register``'s path.

MLflow's client (``conveyor-ml[mlflow]``, the skinny build) resolves the version or alias, reads
the run that logged it (its metrics become the version's lineage metrics, its parameters
properties) and downloads the version's artifacts.  The flavor decides what is registered:

- ``onnx``: the ONNX file itself, served as it is;
- ``sklearn`` saved with skops (MLflow 3's default): the ``model.skops`` file itself goes to the
  conversion gate, which reads skops (skops stays skops: no pickle is made of it);
- other ``sklearn`` formats, ``xgboost``, ``lightgbm``: the model loaded by MLflow's own flavor
  loader (cloudpickle, each framework's native format) and handed to the same conversion gate
  as a file a user registers, with the logged input example as the gate's rows;
- a pyfunc model (Python code only) is refused, with the way to log it as a framework or ONNX.
- ``pytorch``: the module loaded by MLflow and captured with ``torch.export`` at the input shape
  the logged signature declares, then the same gate.

MLflow's own files are kept in the version under ``original/mlflow/``, each with its checksum; the
run id is the lineage's.  Failures are one line each: a refused credential (401/403) names the
variables MLflow's client reads, a download cut mid-way names the file and the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError, Forbidden, InvalidInput, NotFound, Unauthorized, Unreachable
from conveyor.extras import require
from conveyor.interop.mlflow_mirror import ALIAS_PROPERTY
from conveyor.interop.mlflow_ref import MlflowRef

FLAVORS = ("onnx", "sklearn", "xgboost", "lightgbm", "pytorch")  # the first one a model has is used
KEPT_AS = "original/mlflow"


@dataclass
class Fetched:
    """One MLflow model version on local disk, with what its run recorded."""

    ref: MlflowRef  # resolved: always names the version
    folder: Path  # the version's artifacts, MLmodel at the top
    flavor: str
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def mlmodel(self) -> dict[str, Any]:
        return _yaml(self.folder / "MLmodel")

    def properties(self) -> dict[str, str]:
        """What the registered version records about its MLflow origin (fixed at registration)."""
        found = {
            "mlflow.uri": self.ref.uri,
            "mlflow.model": self.ref.name,
            "mlflow.version": str(self.ref.version),
            "mlflow.flavor": self.flavor,
        }
        if self.run_id:
            found["mlflow.run_id"] = self.run_id
        found.update({f"mlflow.param.{k}": v for k, v in sorted(self.params.items())})
        return found

    def kept_files(self) -> list[tuple[str, Path]]:
        """MLflow's files as (path in the version, local path): stored beside the converted model.

        An ONNX flavor's model file is the version's ``model.onnx`` itself (one ONNX file serves)."""
        served = self.folder / str(self.mlmodel["flavors"]["onnx"].get("data")) if self.flavor == "onnx" else None
        return [
            (f"{KEPT_AS}/{p.relative_to(self.folder).as_posix()}", p)
            for p in sorted(self.folder.rglob("*"))
            if p.is_file() and p != served
        ]


def mlflow_client(ref: MlflowRef) -> Any:
    # MLflow retries a refused connection for minutes by default; a user at a terminal wants one line.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    require("mlflow", extra="mlflow", for_="importing from MLflow")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=ref.tracking_uri, registry_uri=ref.tracking_uri)


CREDENTIAL = "set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"


def explained(exc: Exception, ref: MlflowRef) -> ConveyorError:
    """MLflow's exception as one of Conveyor's, in one line naming the server and the model."""
    full = str(exc)
    text = full.splitlines()[0] if full else type(exc).__name__
    code = getattr(exc, "error_code", "")
    if "while downloading one or more artifacts" in text:
        return Unreachable(f"downloading {ref.uri} from {ref.tracking_uri} was cut: {_first_failure(full)}")
    if "failed with error code" in text and code != "RESOURCE_DOES_NOT_EXIST":
        status = text.split("failed with error code", 1)[1].split()[0]
        if status in ("401", "403"):
            which = "a missing or wrong credential" if status == "401" else "a credential without access to it"
            error = Unauthorized if status == "401" else Forbidden
            return error(f"{ref.tracking_uri} answers HTTP {status} to MLflow's API: {which} ({CREDENTIAL})")
        return Unreachable(f"{ref.tracking_uri} answers HTTP {status} to MLflow's API: not an MLflow tracking server?")
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        status, error = ("401", Unauthorized) if code == "UNAUTHENTICATED" else ("403", Forbidden)
        return error(f"{ref.tracking_uri} answers HTTP {status} ({code}) to MLflow's API: {text[:200]} ({CREDENTIAL})")
    if code == "RESOURCE_DOES_NOT_EXIST" or "not found" in text.lower():
        return NotFound(f"{ref.uri}: {text}")
    if "Max retries exceeded" in text or "Connection refused" in text or "Failed to establish" in text:
        return Unreachable(f"MLflow tracking server {ref.tracking_uri} does not answer ({text[:160]})")
    if code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
        return InvalidInput(f"{ref.uri}: {text}")
    return ConveyorError(f"MLflow at {ref.tracking_uri}: {text[:300]}")


def _first_failure(message: str) -> str:
    """The first file and its reason from MLflow's "failures occurred while downloading" message."""
    lines = [line.strip() for line in message.splitlines()[1:] if line.strip()]
    path = next((line.strip("# ").removeprefix("File ") for line in lines if line.startswith("#####")), "")
    reason = next((line for line in lines if not line.startswith("#####")), "no reason given")
    return f"{path + ': ' if path else ''}{reason[:300]}"


def latest_version(ref: MlflowRef) -> str | None:
    """The version REF names now: its alias's target, or the newest version of the model (None: none yet)."""
    client = mlflow_client(ref)
    try:
        if ref.alias is not None:
            return str(client.get_model_version_by_alias(ref.name, ref.alias).version)
        if ref.version is not None:
            return ref.version
        found = client.search_model_versions(f"name = '{ref.name}'", max_results=1, order_by=["version_number DESC"])
    except Exception as exc:  # MLflow raises its own and requests' exceptions
        error = explained(exc, ref)
        if isinstance(error, NotFound):
            return None
        raise error from None
    return str(found[0].version) if found else None


def versions_after(ref: MlflowRef, seen: int) -> list[str]:
    """The versions of REF's model newer than SEEN, oldest first (a watch that was down imports them all)."""
    client = mlflow_client(ref)
    try:
        found = client.search_model_versions(f"name = '{ref.name}'")
    except Exception as exc:
        raise explained(exc, ref) from None
    return [str(n) for n in sorted(int(v.version) for v in found) if n > seen]


def fetch(ref: MlflowRef, dest: Path) -> Fetched:
    """Resolve REF, read its run, download its artifacts into DEST (a new folder)."""
    client = mlflow_client(ref)
    try:
        if ref.alias is not None:
            found = client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            found = client.get_model_version(ref.name, str(ref.version))
        resolved = ref.at_version(str(found.version))
        run = client.get_run(found.run_id) if found.run_id else None
        from mlflow.artifacts import download_artifacts

        uri = client.get_model_version_download_uri(resolved.name, resolved.version)
        folder = Path(download_artifacts(artifact_uri=uri, dst_path=str(dest), tracking_uri=ref.tracking_uri))
    except ConveyorError:
        raise
    except Exception as exc:
        raise explained(exc, ref) from None
    if not (folder / "MLmodel").is_file():
        nested = [p.parent for p in folder.rglob("MLmodel")]
        if len(nested) != 1:
            raise InvalidInput(f"{resolved.uri}: its artifacts hold no MLmodel file: not an MLflow model")
        folder = nested[0]
    flavors = list((_yaml(folder / "MLmodel").get("flavors") or {}).keys())
    flavor = next((f for f in FLAVORS if f in flavors), None)
    if flavor is None and set(flavors) <= {"python_function"}:
        raise InvalidInput(
            f"{resolved.uri} is a pyfunc model (Python code, mlflow.pyfunc.log_model): Conveyor serves ONNX through "
            "its conversion gate and does not run a model's Python code; log the model itself with its framework's "
            "flavor (mlflow.sklearn, mlflow.xgboost, mlflow.lightgbm, mlflow.pytorch) or export it to ONNX and log "
            'it with mlflow.onnx.log_model(onnx_model, name="model", registered_model_name=...)'
        )
    if flavor is None:
        raise InvalidInput(
            f"{resolved.uri}: flavors {sorted(flavors)}; Conveyor imports {', '.join(FLAVORS)} (log the model with one "
            "of them, or as ONNX with mlflow.onnx.log_model)"
        )
    return Fetched(
        ref=resolved,
        folder=folder,
        flavor=flavor,
        run_id=found.run_id or None,
        metrics=dict(run.data.metrics) if run else {},
        params=dict(run.data.params) if run else {},
        description=str(found.description or ""),
    )


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def input_example(fetched: Fetched, scratch: Path) -> Path | None:
    """The logged input example as rows the gate reads (a table's), or None."""
    info = fetched.mlmodel.get("saved_input_example_info") or {}
    example = fetched.folder / str(info.get("artifact_path", ""))
    if info.get("type") != "dataframe" or not example.is_file():
        return None
    rows = scratch / "input_example.json"
    shutil.copyfile(example, rows)
    return rows


def model_file(fetched: Fetched, scratch: Path) -> Path:
    """What ``register_path`` takes for this version: the ONNX file, or a file the conversion gate reads."""
    scratch.mkdir(parents=True, exist_ok=True)
    flavor = fetched.flavor
    config = fetched.mlmodel["flavors"][flavor]
    if flavor == "onnx":
        onnx_file = fetched.folder / str(config.get("data", "model.onnx"))
        folder = scratch / "model"
        folder.mkdir()
        shutil.copyfile(onnx_file, folder / "model.onnx")
        return folder
    native = _native_file(fetched)
    if native is not None:  # kept in its own format (model.skops stays skops): the gate loads it as it is
        kept = scratch / native.name
        shutil.copyfile(native, kept)
        return kept
    mlflow = require("mlflow", extra="mlflow", for_="importing from MLflow")
    try:
        if flavor == "pytorch":
            return _exported(fetched, scratch)
        model = getattr(mlflow, flavor).load_model(str(fetched.folder))
    except ConveyorError:
        raise
    except ModuleNotFoundError as exc:
        extra = "torch" if flavor == "pytorch" else flavor
        raise InvalidInput(
            f"loading the {flavor} model needs {exc.name}: pip install 'conveyor-ml[{extra},mlflow]'"
        ) from None
    except Exception as exc:
        raise InvalidInput(f"{fetched.ref.uri}: MLflow could not load its {flavor} model ({exc})") from None
    joblib = require("joblib", extra="sklearn", for_="converting this model")
    path = scratch / "model.joblib"
    joblib.dump(model, path)
    return path


def _native_file(fetched: Fetched) -> Path | None:
    """A scikit-learn model MLflow saved with skops: that file, which the conversion gate reads itself."""
    config = fetched.mlmodel["flavors"].get("sklearn") or {}
    if fetched.flavor != "sklearn" or config.get("serialization_format") != "skops":
        return None
    found = fetched.folder / str(config.get("pickled_model", "model.skops"))
    return found if found.is_file() and found.suffix == ".skops" else None


def _exported(fetched: Fetched, scratch: Path) -> Path:
    """The PyTorch module captured with torch.export at the signature's input shape (batch axis dynamic)."""
    torch = require("torch", extra="torch", for_="converting this model")
    import mlflow.pytorch

    inputs = json.loads((fetched.mlmodel.get("signature") or {}).get("inputs") or "[]")
    tensors = [i for i in inputs if i.get("type") == "tensor"]
    if len(tensors) != 1:
        raise InvalidInput(
            f"{fetched.ref.uri}: a PyTorch model is imported with a signature of one tensor input (log it with "
            "input_example= or signature=); this one has none"
        )
    spec = tensors[0]["tensor-spec"]
    shape = [int(d) for d in spec["shape"][1:]]
    if any(d < 1 for d in shape):
        raise InvalidInput(f"{fetched.ref.uri}: the signature's input shape {spec['shape']} is only dynamic in batch")
    module = mlflow.pytorch.load_model(str(fetched.folder), map_location="cpu")
    if isinstance(module, torch.nn.Module) and not isinstance(module, torch.fx.GraphModule):
        module.eval()  # a saved torch.export program comes back as a graph that refuses eval()
    example = torch.zeros((2, *shape), dtype=getattr(torch, str(spec.get("dtype", "float32"))))
    program = torch.export.export(module, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = scratch / "model.pt2"
    torch.export.save(program, path)
    return path


def imported_before(reg: Any, name: str, ref: MlflowRef) -> Any | None:
    """The newest unarchived version of NAME imported from REF (a version), or None."""
    return reg.newest_version_where(name, lambda v: v.properties.get("mlflow.uri") == ref.uri)


def import_version(
    reg: Any,
    ref: MlflowRef,
    options: Any = None,
    *,
    name: str | None = None,
    report: Callable[[str], None] = print,
    progress: Callable[[], AbstractContextManager[Any]] = nullcontext,
    mlflow_aliases: dict[str, str] | None = None,
    **registration: Any,
) -> Any:
    """REF registered in REG (``conveyor.registration.register_path``'s keywords pass through):
    the version's lineage names the MLflow version and run, its metrics are the run's.

    ``mlflow_aliases`` (Conveyor alias: MLflow alias) are kept as properties: when the Conveyor alias
    reaches this version, the MLflow alias moves to the MLflow version (``interop/mlflow_mirror.py``)."""
    from conveyor.convert import ConvertOptions
    from conveyor.registration import register_path

    options = options or ConvertOptions()
    if registration.get("skip_unchanged"):
        number = latest_version(ref)
        if number is None:
            raise NotFound(f"{ref.uri}: MLflow has no such model version")
        same = imported_before(reg, name or ref.name, ref.at_version(number))
        if same is not None:
            for alias in registration.get("aliases") or ():
                reg.set_alias(same.name, alias, same.version)
            return reg.resolve(f"{same.name}:{same.version}").model_copy(update={"unchanged": True})
    with tempfile.TemporaryDirectory(prefix="conveyor-mlflow-") as scratch:
        fetched = fetch(ref, Path(scratch) / "artifacts")
        report(
            f"fetched {fetched.ref.uri} ({fetched.flavor} flavor, run {fetched.run_id or 'none'}, "
            f"{len(fetched.metrics)} metrics, {len(fetched.params)} parameters)"
        )
        path = model_file(fetched, Path(scratch) / "model")
        if not registration.get("description"):
            registration["description"] = fetched.description
        if options.sample is None and fetched.flavor != "pytorch":
            options = replace(options, sample=input_example(fetched, Path(scratch)))
        properties = fetched.properties()
        properties.update({ALIAS_PROPERTY + ours: theirs for ours, theirs in (mlflow_aliases or {}).items()})
        return register_path(
            reg, path, name or fetched.ref.name, options, source=fetched.ref.uri, extra_files=fetched.kept_files(),
            properties=properties, metrics=fetched.metrics, run_id=fetched.run_id, report=report,
            progress=progress, **registration,
        )  # fmt: skip
