"""`notebook-llm package CONFIG.json -o OUT_DIR`: models and their records in one directory (or wheel)
that loads offline, after MLC-LLM's `mlc_llm package` and its mlc-package-config.json.

CONFIG.json:

    {"device": "webgpu",
     "model_list": [{"model": "HF://org/repo" | "https://huggingface.co/org/repo" | "path/to/model.gguf"
                              | "path/to/mlc-model-dir",
                     "model_id": "my-model",            # unique; also its folder name under weights/
                     "estimated_vram_bytes": 300000000,
                     "overrides": {"context_window_size": 2048},   # optional, registry.OVERRIDE_KEYS
                     "bundle_weight": true,             # optional (false): copy the weights in
                     "model_lib": "llama-gguf"}]}       # optional: read from the weights when bundled

Relative local paths in CONFIG.json are relative to CONFIG.json's folder. OUT_DIR gets:

    app-config.json       {"model_list": [ModelRecord.to_dict(), ...]}: `AppConfig.load(OUT_DIR)`
    package-config.json   the configuration as validated, defaults filled in
    weights/<model_id>/   bundled weights: a local file or folder copied, a hub repository fetched
                          (loader.download.download_model, so through the cache) and copied

A bundled record's `model` is the path of its weights relative to OUT_DIR (the .gguf file, or the
MLC folder), so the directory can be moved and still loads with no network. `--wheel` also writes
dist/notebook_llm_models_<name>-<version>-py3-none-any.whl holding the directory as package data and
`notebook_llm_models_<name>.app_config()`.

This module owns the command, its validation and the file layout; it reads weights only to name
their model_lib and never touches the GPU.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import hashlib
import json
import os
import re
import shutil
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelFormatError, NotebookLLMError, PackageConfigError
from .registry import (
    APP_CONFIG_FILE,
    LOW_RESOURCE_MB,
    MB,
    AppConfig,
    ModelRecord,
    parse_repo_id,
    prebuilt_app_config,
)

PACKAGE_CONFIG_FILE = "package-config.json"
WEIGHTS_DIR = "weights"
MLC_CHAT_CONFIG = "mlc-chat-config.json"  # what makes a folder an MLC-LLM model
DEVICES = ("webgpu",)  # MLC's "android" / "iphone" name targets of its compiled libraries; there are none here
TOP_LEVEL_KEYS = ("device", "model_list")
REQUIRED_KEYS = ("model", "model_id", "estimated_vram_bytes")
OPTIONAL_KEYS = ("overrides", "bundle_weight", "model_lib")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # also a folder name


@dataclass(frozen=True)
class PackageEntry:
    """One validated entry of CONFIG.json's model_list."""

    model: str  # a hub URL / HF:// as written, or an absolute local path
    model_id: str
    estimated_vram_bytes: int
    overrides: Mapping[str, Any] = field(default_factory=dict)
    bundle_weight: bool = False
    model_lib: str | None = None

    @property
    def repo_id(self) -> str | None:
        return parse_repo_id(self.model)


@dataclass(frozen=True)
class PackageConfig:
    device: str
    model_list: tuple[PackageEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "model_list": [
            {"model": e.model, "model_id": e.model_id, "estimated_vram_bytes": e.estimated_vram_bytes,
             "overrides": dict(e.overrides), "bundle_weight": e.bundle_weight, "model_lib": e.model_lib}
            for e in self.model_list]}


# --------------------------------------------------------------------------------------------
# Reading and validating CONFIG.json
# --------------------------------------------------------------------------------------------


def _unknown_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [key for key in data if key not in allowed]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PackageConfigError(f"{where} has the unknown key {unknown[0]!r}{hint}; allowed keys are {list(allowed)}",
                                 param=f"{where}.{unknown[0]}" if where != "the configuration" else str(unknown[0]))


def _entry(data: Any, index: int, base: Path) -> PackageEntry:
    where = f"model_list[{index}]"
    if not isinstance(data, Mapping):
        raise PackageConfigError(f"{where} is {data!r}; an object with {list(REQUIRED_KEYS)} is allowed", param=where)
    _unknown_keys(data, REQUIRED_KEYS + OPTIONAL_KEYS, where)
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise PackageConfigError(f"{where} lacks the required key(s) {missing}", param=f"{where}.{missing[0]}")
    model, model_id, vram = data["model"], data["model_id"], data["estimated_vram_bytes"]
    if not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
        raise PackageConfigError(f"{where}.model_id is {model_id!r}; a name of letters, digits, '.', '_' and '-' "
                                 "(not starting with '.', '_' or '-') is allowed", param=f"{where}.model_id")
    if not isinstance(vram, int) or isinstance(vram, bool) or vram <= 0:
        raise PackageConfigError(f"{where}.estimated_vram_bytes is {vram!r}; a positive integer is allowed",
                                 param=f"{where}.estimated_vram_bytes")
    bundle = data.get("bundle_weight", False)
    if not isinstance(bundle, bool):
        raise PackageConfigError(f"{where}.bundle_weight is {bundle!r}; true or false is allowed",
                                 param=f"{where}.bundle_weight")
    model_lib = data.get("model_lib")
    if model_lib is not None and (not isinstance(model_lib, str) or not model_lib.strip()):
        raise PackageConfigError(f"{where}.model_lib is {model_lib!r}; a non-empty string such as 'llama-gguf' "
                                 "is allowed", param=f"{where}.model_lib")
    if not isinstance(model, str) or not model.strip():
        raise PackageConfigError(f"{where}.model is {model!r}; a hub URL (HF://org/repo, https://huggingface.co/"
                                 "org/repo) or a local path is allowed", param=f"{where}.model")
    if parse_repo_id(model) is None:
        if "://" in model:
            raise PackageConfigError(f"{where}.model is {model!r}, not a well-formed model URL; HF://org/repo or "
                                     "https://huggingface.co/org/repo is allowed", param=f"{where}.model")
        path = (base / Path(model).expanduser()).resolve()
        if not path.exists():
            raise PackageConfigError(f"{where}.model: there is no file or folder at {path}", param=f"{where}.model")
        model = str(path)
    # Overrides are checked by the record they end up in (the same rules as any ModelRecord).
    try:
        ModelRecord(model=model, model_id=model_id, model_lib=model_lib or "unknown", vram_required_MB=0.0,
                    overrides=data.get("overrides", {}))
    except NotebookLLMError as error:
        raise PackageConfigError(f"{where}: {error}", param=f"{where}.{getattr(error, 'param', None) or 'overrides'}") \
            from None
    return PackageEntry(model, model_id, vram, dict(data.get("overrides", {})), bundle, model_lib)


def read_package_config(path: str | os.PathLike) -> PackageConfig:
    """CONFIG.json, validated: PackageConfigError names the field, the bad value and what is allowed."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageConfigError(f"there is no configuration file at {path}", param="path") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise PackageConfigError(f"{path} is not a readable JSON file: {error}", param="path") from None
    return parse_package_config(data, base=path.parent)


def parse_package_config(data: Any, base: str | os.PathLike = ".") -> PackageConfig:
    """A configuration given as parsed JSON; relative local paths are taken relative to `base`."""
    if not isinstance(data, Mapping):
        raise PackageConfigError(f"the configuration must be a JSON object with {list(TOP_LEVEL_KEYS)}, got "
                                 f"{type(data).__name__}")
    _unknown_keys(data, TOP_LEVEL_KEYS, "the configuration")
    device = data.get("device", "webgpu")
    if device not in DEVICES:
        raise PackageConfigError(f"device is {device!r}; allowed: {list(DEVICES)} (models run through wgpu on any "
                                 "WebGPU adapter; there are no per-device libraries to build)", param="device")
    entries = data.get("model_list")
    if not isinstance(entries, list) or not entries:
        raise PackageConfigError(f"model_list is {entries!r}; a non-empty list of model entries is allowed",
                                 param="model_list")
    model_list = tuple(_entry(entry, i, Path(base).expanduser()) for i, entry in enumerate(entries))
    first_index: dict[str, int] = {}
    for i, entry in enumerate(model_list):
        if entry.model_id in first_index:
            raise PackageConfigError(f"model_list[{i}].model_id {entry.model_id!r} is also model_list"
                                     f"[{first_index[entry.model_id]}]'s; model ids must be unique",
                                     param=f"model_list[{i}].model_id")
        first_index[entry.model_id] = i
    return PackageConfig(device, model_list)


# --------------------------------------------------------------------------------------------
# Writing the package directory
# --------------------------------------------------------------------------------------------


def _weights_in(folder: Path, where: str) -> Path:
    """The model a folder of weights holds: itself for an MLC model, else its one .gguf file."""
    if (folder / MLC_CHAT_CONFIG).is_file():
        return folder
    ggufs = sorted(folder.rglob("*.gguf"))
    if len(ggufs) != 1:
        raise ModelFormatError(f"{where}: {folder} holds {len(ggufs)} .gguf files ({[p.name for p in ggufs][:5]}) and "
                               "no MLC model; exactly one .gguf file, or an MLC model folder, is needed")
    return ggufs[0]


def _model_lib_of(weights: Path) -> str:
    """What runs these weights: "<general.architecture>-gguf", or an MLC model's "<model_type>-<quantization>"."""
    if weights.suffix == ".gguf":
        from .loader.gguf_file import GGUFModelFile

        return f"{GGUFModelFile(weights).architecture}-gguf"
    try:
        chat = json.loads((weights / MLC_CHAT_CONFIG).read_text(encoding="utf-8"))
        return f"{chat['model_type']}-{chat['quantization']}"
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelFormatError(f"{weights / MLC_CHAT_CONFIG} does not name model_type and quantization ({error}); "
                               "give the entry a model_lib") from None


def _copy_weights(source: Path, target: Path) -> None:
    """A file or a folder's files (a hub snapshot's symlinks followed) into `target`, a new folder."""
    target.mkdir(parents=True)
    if source.is_file():
        shutil.copyfile(source, target / source.name)
    else:
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".cache", ".git*"))


def _bundle(entry: PackageEntry, index: int, staging: Path, cache_dir: Path | None, endpoint: str | None,
            progress: Any) -> Path:
    """Copy (or fetch, then copy) the entry's weights under staging/weights/<model_id>; the model's path."""
    target = staging / WEIGHTS_DIR / entry.model_id
    source = Path(entry.model)
    if entry.repo_id is not None:
        from .loader.download import download_model

        record = ModelRecord(model=entry.model, model_id=entry.model_id, model_lib=entry.model_lib or "unknown",
                             vram_required_MB=entry.estimated_vram_bytes / MB)
        source = download_model(record, cache_dir=cache_dir, endpoint=endpoint, progress=progress, show_bar=False)
    _copy_weights(source, target)
    if source.is_file():
        return target / source.name
    return _weights_in(target, f"model_list[{index}] ({entry.model})")


def _record(entry: PackageEntry, model: str, model_lib: str | None, index: int) -> ModelRecord:
    """The entry's record: the prebuilt record of the same id and weights as a base (its shapes,
    family, quantization), the entry's fields over it."""
    if model_lib is None:
        raise PackageConfigError(
            f"model_list[{index}] ({entry.model_id}) needs a model_lib: its weights are not bundled and it is not "
            "a prebuilt model, so the packager cannot read which architecture runs them", param=f"model_list[{index}]")
    base = next((r for r in prebuilt_app_config.model_list if r.model == entry.model), None)
    fields = base.to_dict() if base is not None else {}
    vram_mb = -(-entry.estimated_vram_bytes * 100 // MB) / 100  # MiB, rounded up to 0.01
    fields.update(model=model, model_id=entry.model_id, model_lib=model_lib, vram_required_MB=vram_mb,
                  low_resource_required=vram_mb <= LOW_RESOURCE_MB,
                  overrides={**(base.overrides if base is not None else {}), **entry.overrides})
    return ModelRecord.from_dict(fields)


def build_package(config: PackageConfig, out_dir: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                  endpoint: str | None = None, overwrite: bool = False, progress: Any = None) -> AppConfig:
    """Write the package directory (see the module docstring) and return its AppConfig, as loaded back.

    The directory is written beside OUT_DIR under another name and renamed at the end, so a failed
    run leaves no half-written package. An existing OUT_DIR is replaced only with `overwrite`.
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise PackageConfigError(f"the output {out} exists and is not an empty folder; pass --overwrite to replace it",
                                 param="out_dir")
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        records = []
        for i, entry in enumerate(config.model_list):
            if entry.bundle_weight:
                weights = _bundle(entry, i, staging, None if cache_dir is None else Path(cache_dir), endpoint, progress)
                model, model_lib = weights.relative_to(staging).as_posix(), entry.model_lib or _model_lib_of(weights)
            else:
                model, model_lib = entry.model, entry.model_lib or _unbundled_model_lib(entry, i)
            records.append(_record(entry, model, model_lib, i))
        _write_json(staging / APP_CONFIG_FILE, {"model_list": [r.to_dict() for r in records]})
        _write_json(staging / PACKAGE_CONFIG_FILE, config.to_dict())
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return AppConfig.load(out)


def _unbundled_model_lib(entry: PackageEntry, index: int) -> str | None:
    """A not-bundled entry's model_lib: a local GGUF's or MLC folder's own, or the prebuilt record's of the same weights."""
    if entry.repo_id is None:
        return _model_lib_of(_weights_in(Path(entry.model), f"model_list[{index}]") if Path(entry.model).is_dir()
                             else Path(entry.model))
    base = next((r for r in prebuilt_app_config.model_list if r.model == entry.model), None)
    return None if base is None else base.model_lib


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------
# The wheel
# --------------------------------------------------------------------------------------------

WHEEL_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same directory gives the same wheel


def wheel_module_name(name: str) -> str:
    """notebook_llm_models_<name>, with <name> lower-cased and runs of other characters as '_'."""
    stem = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not stem:
        raise PackageConfigError(f"the package name {name!r} has no letters or digits", param="name")
    return f"notebook_llm_models_{stem}"


def _module_source(module: str) -> str:
    return f'''"""Models packaged for notebook_llm by `notebook-llm package`: `{module}.app_config()` lists them,
and `notebook_llm.create_engine(model_id, app_config={module}.app_config())` loads one offline."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent / "package"


def app_config():
    """The packaged models' AppConfig (their weights inside this package)."""
    from notebook_llm.registry import AppConfig

    return AppConfig.load(PACKAGE_DIR)
'''


def _chunks(data: bytes | None, source: Path | None):
    if source is None:
        yield data
        return
    with open(source, "rb") as stream:
        yield from iter(lambda: stream.read(1 << 22), b"")


def _record_hash(digest: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_wheel(package_dir: str | os.PathLike, name: str, version: str = "0.1.0",
                wheel_dir: str | os.PathLike | None = None) -> Path:
    """A pure-Python wheel holding `package_dir` as `notebook_llm_models_<name>/package/` and an
    `app_config()` function; written to `wheel_dir` (default: package_dir/dist, which is left out)."""
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", version):
        raise PackageConfigError(f"the wheel version is {version!r}; dotted numbers such as '0.1.0' are allowed",
                                 param="version")
    package_dir = Path(package_dir).expanduser().resolve()
    module = wheel_module_name(name)
    dist_info = f"{module}-{version}.dist-info"
    wheel_dir = Path(wheel_dir).expanduser() if wheel_dir is not None else package_dir / "dist"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    path = wheel_dir / f"{module}-{version}-py3-none-any.whl"
    files = sorted(p for p in package_dir.rglob("*") if p.is_file() and not p.is_relative_to(wheel_dir))
    metadata = (f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: {version}\n"
                f"Summary: Models packaged for notebook_llm ({', '.join(r.model_id for r in AppConfig.load(package_dir))})\n"
                "Requires-Dist: notebook-llm-webgpu\n")
    wheel = "Wheel-Version: 1.0\nGenerator: notebook_llm.packaging\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record_lines = []
    with zipfile.ZipFile(path, "w", allowZip64=True) as archive:
        def add(arcname: str, data: bytes | None = None, source: Path | None = None) -> None:
            info = zipfile.ZipInfo(arcname, WHEEL_DATE)
            info.external_attr = 0o644 << 16
            # Weights do not compress; text does.
            info.compress_type = zipfile.ZIP_STORED if source is not None and source.stat().st_size > 1 << 20 \
                else zipfile.ZIP_DEFLATED
            digest, size = hashlib.sha256(), 0
            with archive.open(info, "w", force_zip64=True) as out:
                for chunk in _chunks(data, source):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            record_lines.append(f"{arcname},{_record_hash(digest.digest())},{size}")

        add(f"{module}/__init__.py", _module_source(module).encode())
        for file in files:
            add(f"{module}/package/{file.relative_to(package_dir).as_posix()}", source=file)
        add(f"{dist_info}/METADATA", metadata.encode())
        add(f"{dist_info}/WHEEL", wheel.encode())
        record_lines.append(f"{dist_info}/RECORD,,")
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", WHEEL_DATE)
        info.external_attr = 0o644 << 16
        archive.writestr(info, "\n".join(record_lines) + "\n", zipfile.ZIP_DEFLATED)
    return path


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def add_package_command(commands) -> None:
    """Add `package` to the subcommands of `python -m notebook_llm` / `notebook-llm`."""
    package = commands.add_parser(
        "package", help="bundle models and their records into a directory (or wheel) that loads offline",
        description="Read CONFIG.json (MLC-LLM's mlc-package-config.json layout: device, model_list of "
                    "model, model_id, estimated_vram_bytes, overrides, bundle_weight, model_lib) and write "
                    "OUT_DIR with app-config.json and the bundled weights; load it with AppConfig.load(OUT_DIR).")
    package.add_argument("config", metavar="CONFIG.json", help="the packaging configuration")
    package.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="the folder to write")
    package.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    package.add_argument("--cache-dir", default=None, help="download cache for hub models (default: huggingface_hub's)")
    package.add_argument("--endpoint", default=None, help="model hub URL (default: $HF_ENDPOINT, else huggingface.co)")
    package.add_argument("--wheel", action="store_true", help="also build OUT_DIR/dist/notebook_llm_models_<name>-*.whl")
    package.add_argument("--name", default=None, help="the wheel's <name> (default: OUT_DIR's folder name)")
    package.add_argument("--version", default="0.1.0", help="the wheel's version (default 0.1.0)")


def run_package(args: argparse.Namespace) -> int:
    try:
        config = read_package_config(args.config)
        app_config = build_package(config, args.output, cache_dir=args.cache_dir, endpoint=args.endpoint,
                                   overwrite=args.overwrite,
                                   progress=lambda report: print(f"  {report.text}", file=sys.stderr))
        out = Path(args.output).expanduser().resolve()
        for record in app_config:
            where = Path(record.model).relative_to(out) if record.local_path and Path(record.model).is_relative_to(out) \
                else record.model
            print(f"{record.model_id}: {record.model_lib}, {record.vram_required_MB:.0f} MB, {where}")
        print(f"wrote {out / APP_CONFIG_FILE}")
        if args.wheel:
            print(f"wrote {build_wheel(out, args.name or out.name, args.version)}")
    except NotebookLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
