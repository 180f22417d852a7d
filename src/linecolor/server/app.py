"""The web studio's Flask application: an app factory, a ``ui`` and an ``api`` blueprint, JSON errors everywhere.

``create_app(config)`` builds the app and loads the model once (``init_colorizer``) onto
``app.extensions["colorizer"]``; a model that fails to load leaves the process up, ``/api/health`` 200 and
``/api/ready`` 503 with the reason. All colourisation goes through the one :class:`ColorizationPipeline` behind an
:class:`~linecolor.server.gate.InferenceGate` (one at a time, bounded queue). Served by waitress (:func:`serve`),
never by Flask's development server; the debugger is never on.

API (multipart/form-data in, PNG or JSON out):
    POST /api/analyse   line (file), gap (pixels or "auto", optional) → JSON {id, width, height, regions, gap,
                        stroke_width, closures}: the drawing's gap-closed regions, kept by the server (bounded cache)
    GET  /api/regions/<id>  image/png: the region map of an analysis, region k as RGB (k >> 16, k >> 8 & 255, k & 255)
    POST /api/colorize  line (file) or analysis (an id from /api/analyse: the line is not sent again), hints (RGBA
                        PNG, optional), points (JSON list of [x, y, "#rrggbb", r], optional), reference (file,
                        reference mode), mode, seed, latent_shift, composite (regions | network),
                        suggestion_strength (0–1; absent: the model's own default, /api/ready's
                        model.suggestion_strength), gap (with a line), palette (JSON list of "#rrggbb":
                        unhinted regions take its nearest colour), format (png | psd | ora: the layers as a
                        Photoshop / OpenRaster attachment)
                        → image/png (or the layered file), headers X-Request-Id, X-Linecolor-Analysis and (stochastic mode) X-Linecolor-Seed;
                        404 unknown_analysis when the server no longer holds that analysis (send the line again)
    POST /api/suggest   line (file) or analysis, hints or points, x, y, palette (optional) → JSON {colours: ["#rrggbb", …] (≤ 3, best
                        first), region, analysis}: the model's colours for the region at (x, y)
    POST /api/variations  line (file) or analysis, hints or points, count (1–8, default 4) or seeds (comma-separated),
                        latent_shift, composite, suggestion_strength, palette (as /api/colorize) → JSON
                        {variations: [{seed, image: "data:image/png;base64,…"}, …], analysis}: stochastic colourings
                        to choose from, as previews (long side ≤ 256 px); colorize with a seed for the full size
    POST /api/lineart   image (file), thickness (1–4, default 2) → image/png clean line art whose regions close
    GET  /api/health    liveness;  GET /api/ready  model loaded?;  GET /api/examples  bundled example line arts
    GET  /api/limits    modes, ranges and defaults (:func:`linecolor.limits.as_dict`): the studio's controls
Errors: ``{"error": {"code", "message", "request_id"}}`` with 400/404/405/413/415/500/503/504.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import re
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    jsonify,
    render_template,
    request,
    send_file,
)
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from linecolor import limits
from linecolor.config import ServerConfig
from linecolor.errors import (
    ImageTooLarge,
    InputImageError,
    LinecolorError,
    UnsupportedImageFormat,
)
from linecolor.limits import (
    COMPOSITES,
    MAX_GAP,
    MAX_IMAGE_PIXELS,
    MAX_HINT_POINTS,
    MAX_LATENT_SHIFT,
    MAX_SEED,
    MAX_PALETTE_COLOURS,
    MAX_VARIATIONS,
    MODES,
    OUTPUT_FORMATS,
    STUDIO_MAX_SEED,
    SUGGESTION_STRENGTH_RANGE,
    VARIATION_COUNT,
    VARIATION_PREVIEW_PX,
)
from linecolor.raster.layered import layered_bytes
from linecolor.raster.palette import Palette
from linecolor.server.gate import ClientGone, InferenceGate, Overloaded, TimedOut
from linecolor.version import __version__

log = logging.getLogger("linecolor.server")
STATIC_DIR = Path(__file__).parent / "static"
PNG_COMPRESS_LEVEL = 1
"""zlib level of the PNGs the server sends: flat colours compress well at any level, and level 1 encodes a 2048²
result several times faster than Pillow's default 6 (measured in ``linecolor bench``)."""


class ApiError(Exception):
    """A client error with its HTTP status and a stable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class ColorizerState:
    """What ``init_colorizer`` left on ``app.extensions["colorizer"]``."""

    pipeline: Any | None
    reason: str = ""
    model_info: dict[str, Any] = field(default_factory=dict)
    gate: InferenceGate | None = None


def init_colorizer(app: Flask, config: ServerConfig, pipeline: Any | None = None) -> ColorizerState:
    """Load the model once; on failure keep serving (health 200) and say why in ``/api/ready``."""
    gate = InferenceGate(config.queue_size, config.queue_timeout_s, config.request_timeout_s)
    if pipeline is None:
        from linecolor.inference.pipeline import ColorizationPipeline

        try:
            pipeline = ColorizationPipeline.from_pretrained(config.weights, device=config.device,
                                                            max_pixels=config.max_pixels)
            pipeline.preload()  # torch for variations and references, while the studio opens
        except Exception as exc:  # noqa: BLE001 — whatever the weights do, the process stays up and says why
            if not isinstance(exc, LinecolorError):
                log.exception("loading the model failed unexpectedly")
            reason = _weights_failure_reason(config.weights, exc)
            log.error("no model loaded: %s", reason)
            state = ColorizerState(None, reason=reason, gate=gate)
            app.extensions["colorizer"] = state
            return state
    mc = pipeline.config
    info = {"variant": mc.generator.variant, "working_size": mc.working_size,
            "base_channels": mc.generator.base_channels, "style_latent": mc.generator.use_style_latent,
            "fill_guide": mc.generator.fill_guide,
            # Per model: full strength for a region head's picks, less for the network's own median colour.
            "suggestion_strength": pipeline.default_suggestion_strength,
            "region_head": pipeline.region_head is not None,
            # The execution path (linecolor.inference.runtime): from_pretrained picks the fastest available one.
            "backend": getattr(getattr(pipeline, "model", None), "backend", "plain")}
    state = ColorizerState(pipeline, model_info=info, gate=gate)
    app.extensions["colorizer"] = state
    return state


PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")


def _weights_failure_reason(weights: str | None, exc: Exception) -> str:
    """The load error, plus what to do when a pickled checkpoint was offered instead of a model directory."""
    reason = str(exc)
    if weights is None:
        return reason
    advice = ("safetensors required: pickled checkpoints (.pt/.bin/.ckpt) are never loaded; "
              "`linecolor export` turns a linecolor training checkpoint into a model directory")
    path = Path(weights)
    if path.is_file():
        return (f"{reason}: {path.name} is a file, not a model directory with config.json + model.safetensors "
                f"({advice})")
    try:
        pickled = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES) if path.is_dir() else []
    except OSError:
        pickled = []
    if pickled and "safetensors required" not in reason:
        reason += f" (found {', '.join(pickled[:3])}; {advice})"
    return reason


def create_app(config: ServerConfig | None = None, *, pipeline: Any | None = None) -> Flask:
    """The studio app. ``pipeline`` injects an already-built pipeline (tests, embedding); otherwise the model is
    loaded from ``config.weights`` (``None`` = the bundled default)."""
    config = config or ServerConfig()
    app = Flask(__name__, static_folder=str(STATIC_DIR), template_folder=str(Path(__file__).parent / "templates"))
    app.config.update(
        MAX_CONTENT_LENGTH=config.max_content_length,
        MAX_FORM_PARTS=config.max_form_parts,
        # Werkzeug checks this against its whole parse buffer (its 64 KiB read chunk plus a held-back boundary
        # tail), for file parts too: it must stay well above 64 KiB or uploads over 64 KiB randomly get 413.
        # 500 kB (Flask's default) also fits the largest legal 'points' field (10,000 points).
        MAX_FORM_MEMORY_SIZE=500_000,
        LINECOLOR=config,
        JSON_SORT_KEYS=False,
        # Requests naming another host get 400 (DNS rebinding); see ServerConfig.allowed_hosts.
        TRUSTED_HOSTS=config.trusted_hosts(),
    )
    # No redirects built from the Host header: Werkzeug's slash-merging and trailing-slash redirects answer with an
    # absolute Location made of it. Without them, //api//health and /api/health/ are plain 404s.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    init_colorizer(app, config, pipeline)
    app.register_blueprint(ui)
    app.register_blueprint(api, url_prefix="/api")
    _register_hooks(app)
    return app


# --------------------------------------------------------------------------------------------- hooks
def _register_hooks(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        g.request_id = uuid.uuid4().hex[:16]

    @app.after_request
    def security_headers(response):
        response.headers["X-Request-Id"] = getattr(g, "request_id", "")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
        return response

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return _error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge):
        return _error_response(413, "too_large", "the request is too large (body size or number of form parts "
                                                 f"over the limit of {current_app.config['MAX_CONTENT_LENGTH']} "
                                                 f"bytes / {current_app.config['MAX_FORM_PARTS']} parts)")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else {}
        return _error_response(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"),
                               exc.description or exc.name, headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("request %s failed", getattr(g, "request_id", "?"))
        return _error_response(500, "internal_error", "the server failed to process this request; "
                                                      "it has been logged under the request id")


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    body = {"error": {"code": code, "message": message, "request_id": getattr(g, "request_id", "")}}
    response = jsonify(body)
    response.status_code = status
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


# ------------------------------------------------------------------------------------------------ ui
ui = Blueprint("ui", __name__)


@ui.get("/")
def index():
    return render_template("index.html", version=__version__)


# ----------------------------------------------------------------------------------------------- api
api = Blueprint("api", __name__)


@api.get("/health")
def health():
    return jsonify({"status": "ok"})


@api.get("/ready")
def ready():
    state: ColorizerState = current_app.extensions["colorizer"]
    if state.pipeline is None:
        return jsonify({"ready": False, "reason": state.reason}), 503
    return jsonify({"ready": True, "model": state.model_info, "version": __version__})


@api.get("/limits")
def limits_():
    return jsonify(limits.as_dict())


@api.get("/examples")
def examples():
    path = STATIC_DIR / "examples" / "examples.json"
    if not path.is_file():
        return jsonify({"examples": []})
    data = json.loads(path.read_text(encoding="utf-8"))
    return jsonify({"examples": data.get("examples", [])})


@api.post("/colorize")
def colorize():
    state: ColorizerState = current_app.extensions["colorizer"]
    if state.pipeline is None:
        raise ApiError(503, "not_ready", f"no model is loaded: {state.reason}")
    form = request.form
    line, gap, hints = _drawing_fields(state)
    reference = _file("reference")
    mode = form.get("mode", "deterministic")
    if mode not in MODES:
        raise ApiError(400, "bad_field", f"mode must be one of {', '.join(MODES)}, got {mode[:40]!r}")
    seed = _int_field("seed", 0, MAX_SEED, default=None)
    if seed is None and mode == "stochastic":
        seed = secrets.randbelow(STUDIO_MAX_SEED + 1)  # reported back, so the variation can be reproduced
    latent_shift = _float_field("latent_shift", -MAX_LATENT_SHIFT, MAX_LATENT_SHIFT, default=0.0)
    composite = (form.get("composite") or "").strip() or "regions"
    if composite not in COMPOSITES:
        raise ApiError(400, "bad_field", f"composite must be one of {', '.join(COMPOSITES)}, got {composite[:40]!r}")
    suggestion_strength = _float_field("suggestion_strength", *SUGGESTION_STRENGTH_RANGE, default=None)
    if mode == "reference" and reference is None:
        raise ApiError(400, "missing_field", "reference mode needs a 'reference' image")
    if mode != "reference" and reference is not None:
        raise ApiError(400, "bad_field", f"a reference image was sent but mode is {mode!r}")
    palette = _palette(form.get("palette"))
    output_format = (form.get("format") or "").strip() or "png"
    if output_format not in OUTPUT_FORMATS:
        raise ApiError(400, "bad_field", f"format must be one of {', '.join(OUTPUT_FORMATS)}, "
                                         f"got {output_format[:40]!r}")

    def job():
        analysis = state.pipeline.analyse(line, gap)
        run = state.pipeline if output_format == "png" else state.pipeline.layered
        result = run(analysis, hints, reference, mode=mode, seed=seed,
                     latent_shift=latent_shift, composite=composite, suggestion_strength=suggestion_strength,
                     palette=palette)
        if output_format != "png":  # encoded inside the gate: a 4096² PSD takes seconds to write
            result = layered_bytes(result, "." + output_format)
        return result, analysis.id

    result, used = _run_gated(state, job, _megapixels(line))
    response = _png_response(result) if output_format == "png" else _layered_response(result, output_format)
    response.headers["X-Linecolor-Analysis"] = used
    if mode == "stochastic":  # the only mode a seed affects
        response.headers["X-Linecolor-Seed"] = str(seed)
    return response


@api.post("/variations")
def variations():
    """Stochastic colourings of the drawing to choose from, as small previews with their seeds (the studio's strip
    of variations); the one chosen is then coloured at full size with its seed through /api/colorize."""
    state: ColorizerState = current_app.extensions["colorizer"]
    if state.pipeline is None:
        raise ApiError(503, "not_ready", f"no model is loaded: {state.reason}")
    form = request.form
    line, gap, hints = _drawing_fields(state)
    seeds = _seeds_field()
    if seeds is None:
        count = _int_field("count", 1, MAX_VARIATIONS, default=VARIATION_COUNT)
        seeds = _distinct_seeds(count)
    elif (form.get("count") or "").strip():
        raise ApiError(400, "bad_field", "send either 'count' or 'seeds', not both")
    generator = getattr(getattr(state.pipeline, "config", None), "generator", None)
    if generator is not None and not generator.use_style_latent:
        raise ApiError(400, "no_style_latent", "this model has no style latent, so it has no variations")
    latent_shift = _float_field("latent_shift", -MAX_LATENT_SHIFT, MAX_LATENT_SHIFT, default=0.0)
    composite = (form.get("composite") or "").strip() or "regions"
    if composite not in COMPOSITES:
        raise ApiError(400, "bad_field", f"composite must be one of {', '.join(COMPOSITES)}, got {composite[:40]!r}")
    suggestion_strength = _float_field("suggestion_strength", *SUGGESTION_STRENGTH_RANGE, default=None)
    palette = _palette(form.get("palette"))

    def job():
        analysis = state.pipeline.analyse(line, gap)
        images = state.pipeline.variations(analysis, hints, seeds, latent_shift=latent_shift, composite=composite,
                                           suggestion_strength=suggestion_strength, palette=palette,
                                           max_side=VARIATION_PREVIEW_PX)
        return [_png_data_url(image) for image in images], analysis.id  # encoded inside the gate, like PSDs

    urls, used = _run_gated(state, job, _megapixels(line) * len(seeds))
    return jsonify({"variations": [{"seed": s, "image": u} for s, u in zip(seeds, urls)], "analysis": used})


def _seeds_field() -> list[int] | None:
    """The ``seeds`` field: comma-separated whole numbers 0 … MAX_SEED, at most MAX_VARIATIONS; None when absent."""
    raw = request.form.get("seeds")
    if raw is None or not raw.strip():
        return None
    parts = raw.split(",")
    if len(parts) > MAX_VARIATIONS:
        raise ApiError(400, "bad_field", f"seeds: at most {MAX_VARIATIONS}, got {len(parts)}")
    seeds = []
    for part in parts:
        part = part.strip()
        if not re.fullmatch(r"\d{1,19}", part) or int(part) > MAX_SEED:
            raise ApiError(400, "bad_field", f"seeds must be whole numbers from 0 to {MAX_SEED}, "
                                             f"comma-separated; got {part[:40]!r}")
        seeds.append(int(part))
    return seeds


def _distinct_seeds(count: int) -> list[int]:
    """``count`` different random seeds the studio can show and type back (≤ STUDIO_MAX_SEED)."""
    seeds: list[int] = []
    while len(seeds) < count:
        seed = secrets.randbelow(STUDIO_MAX_SEED + 1)
        if seed not in seeds:
            seeds.append(seed)
    return seeds


def _png_data_url(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@api.post("/suggest")
def suggest():
    """The model's colours for the region at (x, y): up to three, best first (the studio's "suggested here")."""
    state: ColorizerState = current_app.extensions["colorizer"]
    if state.pipeline is None:
        raise ApiError(503, "not_ready", f"no model is loaded: {state.reason}")
    line, gap, hints = _drawing_fields(state)
    x = _int_field("x", 0, MAX_IMAGE_PIXELS, default=None)
    y = _int_field("y", 0, MAX_IMAGE_PIXELS, default=None)
    if x is None or y is None:
        raise ApiError(400, "missing_field", "x and y (pixels in the drawing) are required")
    palette = _palette(request.form.get("palette"))

    def job():
        analysis = state.pipeline.analyse(line, gap)
        return state.pipeline.suggest_at(analysis, x, y, hints, palette=palette), analysis

    colours, analysis = _run_gated(state, job, _megapixels(line))
    return jsonify({"colours": colours, "region": int(analysis.extended[y, x]), "analysis": analysis.id})


@api.post("/analyse")
def analyse():
    state: ColorizerState = current_app.extensions["colorizer"]
    if state.pipeline is None:
        raise ApiError(503, "not_ready", f"no model is loaded: {state.reason}")
    line = _file("line", required=True)
    gap = _gap_field()

    def job():
        return state.pipeline.analyse(line, gap)

    analysis = _run_gated(state, job, _megapixels(line))
    h, w = analysis.shape
    return jsonify({"id": analysis.id, "width": w, "height": h, "regions": analysis.num_regions,
                    "gap": analysis.gap, "stroke_width": analysis.stroke_width, "closures": analysis.num_closures})


@api.get("/regions/<analysis_id>")
def regions(analysis_id: str):
    state: ColorizerState = current_app.extensions["colorizer"]
    found = (state.pipeline.analyses.get(analysis_id) if state.pipeline is not None
             and _ANALYSIS_ID.fullmatch(analysis_id) else None)
    if found is None:
        raise ApiError(404, "unknown_analysis", "the server does not hold this analysis (any more): send the line "
                                                "image to /api/analyse again")
    import numpy as np
    from PIL import Image

    labels = found.extended.astype(np.uint32)
    rgb = np.stack([(labels >> 16) & 255, (labels >> 8) & 255, labels & 255], axis=-1).astype(np.uint8)
    return _png_response(Image.fromarray(rgb), compress_level=1)


@api.post("/lineart")
def lineart():
    import numpy as np
    from PIL import Image

    from linecolor.raster.imageio import open_image, to_rgb
    from linecolor.raster.lines import clean_sketch
    from linecolor.raster.regions import SKETCH_GAP_FRACTION, close_gaps

    state: ColorizerState = current_app.extensions["colorizer"]
    data = _file("image", required=True)
    thickness = _int_field("thickness", 1, 4, default=2)
    config: ServerConfig = current_app.config["LINECOLOR"]

    def job():
        rgb = np.asarray(to_rgb(open_image(data, max_pixels=config.max_pixels, name="image")))
        # Cleaned strokes rarely meet: the closing strokes of a line analysis make its regions close.
        cleaned = clean_sketch(rgb, target_thickness=thickness)
        return Image.fromarray(close_gaps(cleaned, min(MAX_GAP, SKETCH_GAP_FRACTION * min(cleaned.shape))))

    return _png_response(_run_gated(state, job, _megapixels(data)))


# ------------------------------------------------------------------------------------------- helpers
def _megapixels(line: Any) -> float:
    """The size of a request's drawing (bytes or an analysis) in megapixels, read from the header only: what the
    gate prices its Retry-After by. 1 when the header cannot be read (the job itself will say why)."""
    from linecolor.raster.imageio import declared_size

    if isinstance(line, (bytes, bytearray)):
        size = declared_size(bytes(line))
        return size[0] * size[1] / 1e6 if size else 1.0
    shape = getattr(line, "shape", None)
    return shape[0] * shape[1] / 1e6 if shape else 1.0


def _run_gated(state: ColorizerState, job, megapixels: float = 1.0):
    # waitress (with channel_request_lookahead, see serve) tells whether the client is still connected.
    client_gone = request.environ.get("waitress.client_disconnected")
    try:
        return state.gate.run(job, client_gone, megapixels=megapixels)
    except ClientGone as exc:
        log.info("request %s dropped: %s", getattr(g, "request_id", "?"), exc)
        raise ApiError(503, "client_gone", str(exc)) from None
    except Overloaded as exc:
        raise ApiError(503, "busy", str(exc), {"Retry-After": str(exc.retry_after_s)}) from None
    except TimedOut as exc:
        raise ApiError(504, "timeout", str(exc)) from None
    except UnsupportedImageFormat as exc:
        raise ApiError(415, "unsupported_format", str(exc)) from None
    except ImageTooLarge as exc:
        raise ApiError(413, "image_too_large", str(exc)) from None
    except InputImageError as exc:
        raise ApiError(400, "bad_image", str(exc)) from None
    except LinecolorError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None


def _file(name: str, required: bool = False) -> bytes | None:
    """The bytes of upload ``name``; images are decoded later, by the pipeline, under its pixel cap."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data with image files as file parts")
    storage = request.files.get(name)
    if storage is None:
        if name in request.form:
            raise ApiError(400, "bad_field", f"'{name}' must be sent as a file part, not as a text field "
                                             "(URLs and data URLs are not fetched or decoded)")
        if required:
            raise ApiError(400, "missing_field", f"the '{name}' image is required")
        return None
    data = storage.read()
    if not data:
        raise ApiError(400, "bad_image", f"the '{name}' file is empty, not a decodable image")
    return data


def _int_field(name: str, lo: int, hi: int, default: int | None) -> int | None:
    raw = request.form.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ApiError(400, "bad_field", f"{name} must be an integer, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise ApiError(400, "bad_field", f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def _float_field(name: str, lo: float, hi: float, default: float | None) -> float | None:
    raw = request.form.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ApiError(400, "bad_field", f"{name} must be a number, got {raw[:40]!r}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ApiError(400, "bad_field", f"{name} must be a finite number in [{lo:g}, {hi:g}], got {raw[:40]!r}")
    return value


_ANALYSIS_ID = re.compile(r"[0-9a-f]{32}")


def _gap_field() -> float | None:
    """The ``gap`` field: pixels in [0, MAX_GAP], or empty / "auto" for the automatic setting."""
    raw = (request.form.get("gap") or "").strip()
    if raw in ("", "auto"):
        return None
    return _float_field("gap", 0.0, MAX_GAP, default=0.0)


def _points(raw: str | None) -> list | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        points = json.loads(raw)
    except (ValueError, RecursionError):  # malformed, an integer of over 4300 digits, or nesting deeper than ~1000
        raise ApiError(400, "bad_field", "points must be a JSON list of [x, y, \"#rrggbb\", radius]") from None
    if not isinstance(points, list) or len(points) > MAX_HINT_POINTS or not all(isinstance(p, list) for p in points):
        raise ApiError(400, "bad_field", f"points must be a JSON list (at most {MAX_HINT_POINTS}) of "
                                         "[x, y, \"#rrggbb\", radius]")
    return [tuple(p) for p in points]


def _drawing_fields(state: "ColorizerState"):
    """(line, gap, hints) of a colouring request: the line image or the analysis the server holds for it (404
    unknown_analysis when it no longer does), the gap setting, and the hints as an image or a list of points."""
    analysis_id = (request.form.get("analysis") or "").strip()
    line = _file("line", required=not analysis_id)
    if analysis_id and line is not None:
        raise ApiError(400, "bad_field", "send either a 'line' image or an 'analysis' id, not both")
    gap = _gap_field()
    if analysis_id:
        line = state.pipeline.analyses.get(analysis_id) if _ANALYSIS_ID.fullmatch(analysis_id) else None
        if line is None:
            raise ApiError(404, "unknown_analysis", "the server does not hold this analysis (any more): send the "
                                                    "line image again")
    hints = _file("hints")
    points = _points(request.form.get("points"))
    if hints is not None and points is not None:
        raise ApiError(400, "bad_field", "send hints either as a 'hints' image or as 'points', not both")
    return line, gap, points if points is not None else hints


def _palette(text: str | None) -> Palette | None:
    if text is None or not text.strip():
        return None
    if len(text) > MAX_PALETTE_COLOURS * 12:  # '"#rrggbb", ' per colour: refused before parsing
        raise ApiError(400, "bad_field", f"palette: at most {MAX_PALETTE_COLOURS} colours")
    try:
        return Palette.from_hex(json.loads(text))
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "bad_field", "palette must be a JSON list of \"#rrggbb\" colours") from exc
    except LinecolorError as exc:
        raise ApiError(400, "bad_field", f"palette: {exc}") from exc


LAYERED_MIMETYPES = {"psd": "image/vnd.adobe.photoshop", "ora": "image/openraster"}


def _layered_response(data: bytes, output_format: str):
    response = send_file(io.BytesIO(data), mimetype=LAYERED_MIMETYPES[output_format], max_age=0, as_attachment=True,
                         download_name=f"linecolor.{output_format}")
    response.headers["Cache-Control"] = "no-store"
    return response


def _png_response(image, compress_level: int = PNG_COMPRESS_LEVEL):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    buffer.seek(0)
    response = send_file(buffer, mimetype="image/png", max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------------------------------------- serving
def _refusing_channel_class():
    """waitress's connection class with one fix: a request whose Content-Length is over the body limit and that
    sends "Expect: 100-continue" gets its 413 at once.

    waitress 3.0.2 answers such a request "100 Continue" and then marks it incomplete again, so the 413 it had
    decided on is never sent and the connection waits for a body it will refuse (found by the hostile-input
    review, tests/test_hostile_inputs.py). Not inviting the body is the whole fix."""
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser

    class RefusingParser(HTTPRequestParser):
        def parse_header(self, header_plus):
            super().parse_header(header_plus)
            if self.expect_continue and self.content_length >= self.adj.max_request_body_size:
                self.expect_continue = False

    class RefusingChannel(HTTPChannel):
        parser_class = RefusingParser

    return RefusingChannel


def serve(config: ServerConfig, *, ready_message: bool = True) -> None:
    """Serve the studio with waitress (a production WSGI server) until interrupted."""
    import signal

    from waitress import create_server

    app = create_app(config)
    # channel_request_lookahead keeps each connection readable while its request is processed, so a client that
    # disconnects is noticed (environ["waitress.client_disconnected"]) and its queued request dropped by the gate.
    # max_request_body_size makes waitress answer 413 on the Content-Length (or the running count of a chunked
    # body) before spooling anything to disk, and before answering "Expect: 100-continue"; Flask's own limit,
    # the same number, would only see the body after waitress had buffered it. poll() instead of select() lets
    # the connection limit exceed select's 1024 descriptors; idle connections are swept every second.
    server = create_server(app, host=config.host, port=config.port, threads=config.threads, ident="linecolor",
                           clear_untrusted_proxy_headers=True, channel_request_lookahead=1,
                           connection_limit=config.connection_limit, channel_timeout=config.channel_timeout_s,
                           cleanup_interval=1, max_request_body_size=config.max_content_length,
                           asyncore_use_poll=True)
    server.channel_class = _refusing_channel_class()
    port = server.effective_port  # the real port when config.port == 0
    if ready_message:
        state: ColorizerState = app.extensions["colorizer"]
        status = "model loaded" if state.pipeline is not None else f"NO MODEL LOADED ({state.reason})"
        print(f"linecolor studio: serving on http://{config.host}:{port}/ — {status}", flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
        app.extensions["colorizer"].gate.shutdown()
