#!/usr/bin/env bash
# Vendor the browser assets the web UI serves from /static (no CDN anywhere).
#
#   scripts/vendor_assets.sh            # from the repository root or anywhere else
#
# What it does, reproducibly (same pinned versions -> byte-identical output):
#   1. `npm pack` the pinned govuk-frontend and htmx.org tarballs into a temp dir
#      (npm checks each tarball against the registry's sha512 integrity).
#   2. Copies only what the app serves into web/static/:
#        govuk/govuk-frontend.min.css, govuk/govuk-frontend.min.js,
#        htmx/htmx.min.js, htmx/LICENSE
#      (no Sass, no source maps, no ES module sources). NOT the package's assets/ folder:
#      the GDS Transport font is licensed for GOV.UK only, and the crown/crest images and
#      the icons in its manifest are GOV.UK's; this service is not on GOV.UK. Our own
#      neutral favicon is web/static/favicon.svg (an app file, not vendored).
#   3. In the CSS: removes the GDS Transport `@font-face` rules (text falls back to the
#      next font in the stack, Arial), replaces the crest `url(...)` (GOV.UK footer
#      copyright logo, which we never render) with `none`, drops the `sourceMappingURL`
#      comments (maps are not shipped). Fails if any url(...) is left that would not
#      resolve, or if GDS Transport @font-face or crest references remain.
#   4. Writes web/static/versions.json and web/static/VENDORED.md: package, exact version,
#      tarball integrity, and sha256 of every copied file (upstream and as vendored).
#
# It only replaces web/static/govuk/ and web/static/htmx/; app files (app.css) are kept.
#
# Version pairing: govuk-frontend-jinja 4.1.0 (PyPI, our Jinja macros) is tested against
# govuk-frontend 6.3.0 (its README compatibility table); bump both together.
set -euo pipefail

GOVUK_FRONTEND_VERSION="6.3.0"
HTMX_VERSION="2.0.11"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATIC="$ROOT/web/static"
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="python3"; fi
fi

command -v npm >/dev/null || { echo "vendor_assets: npm is required" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "vendor_assets: npm pack govuk-frontend@$GOVUK_FRONTEND_VERSION htmx.org@$HTMX_VERSION"
(cd "$TMP" && npm pack --json --silent \
    "govuk-frontend@$GOVUK_FRONTEND_VERSION" "htmx.org@$HTMX_VERSION" >"$TMP/pack.json")

mkdir -p "$TMP/govuk-frontend" "$TMP/htmx"
tar -xzf "$TMP/govuk-frontend-$GOVUK_FRONTEND_VERSION.tgz" -C "$TMP/govuk-frontend"
tar -xzf "$TMP/htmx.org-$HTMX_VERSION.tgz" -C "$TMP/htmx"
GF="$TMP/govuk-frontend/package"
HX="$TMP/htmx/package"

# Sanity: the tarballs are the versions we asked for.
"$PYTHON" - "$GF/package.json" "$GOVUK_FRONTEND_VERSION" "$HX/package.json" "$HTMX_VERSION" <<'PY'
import json, sys
for path, want in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    got = json.load(open(path))["version"]
    if got != want:
        sys.exit(f"vendor_assets: {path} is version {got}, expected {want}")
PY

rm -rf "$STATIC/govuk" "$STATIC/htmx"
mkdir -p "$STATIC/govuk" "$STATIC/htmx"

cp "$GF/dist/govuk/govuk-frontend.min.css" "$STATIC/govuk/"
cp "$GF/dist/govuk/govuk-frontend.min.js" "$STATIC/govuk/"
cp "$HX/dist/htmx.min.js" "$STATIC/htmx/"
cp "$HX/LICENSE" "$STATIC/htmx/LICENSE"

# Fix up the CSS/JS, then record versions and checksums (upstream and vendored).
"$PYTHON" - "$STATIC" "$GF" "$HX" "$TMP/pack.json" <<'PY'
import hashlib, json, re, sys
from pathlib import Path

static, gf, hx, pack_json = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])

css = static / "govuk" / "govuk-frontend.min.css"
text = css.read_text(encoding="utf-8")
# GDS Transport is licensed for GOV.UK only: drop its @font-face rules (font-family stacks fall back to arial).
text, fonts = re.subn(r"@font-face\{font-family:\s*[\"']?GDS Transport[\"']?;[^}]*\}", "", text)
if fonts == 0:
    sys.exit("vendor_assets: no GDS Transport @font-face rule found: check the CSS format of this version")
# The crest is GOV.UK's: the footer copyright logo that uses it is never rendered; no image, no request.
text = re.sub(r"url\(/?assets/images/govuk-crest\.svg\)", "none", text)
text = text.replace("url(/assets/", "url(assets/")
text = re.sub(r"/\*# sourceMappingURL=[^*]*\*/\s*$", "", text)
css.write_text(text, encoding="utf-8")

js = static / "govuk" / "govuk-frontend.min.js"
jtext = js.read_text(encoding="utf-8")
jtext = re.sub(r"//# sourceMappingURL=\S*\s*$", "", jtext)
js.write_text(jtext, encoding="utf-8")

# Every url(...) in the vendored CSS must resolve to a vendored file.
bad = []
for raw in re.findall(r"url\(([^)]*)\)", text):
    ref = raw.strip().strip("'\"")
    if ref.startswith(("data:", "#")):
        continue
    if "://" in ref or ref.startswith("/") or not (css.parent / ref.split("?")[0].split("#")[0]).is_file():
        bad.append(ref)
if bad:
    sys.exit(f"vendor_assets: unresolved url(...) in {css}: {sorted(set(bad))}")
if "sourceMappingURL" in text or "sourceMappingURL" in jtext:
    sys.exit("vendor_assets: sourceMappingURL left behind")
if re.search(r"@font-face\{[^}]*GDS Transport", text) or "govuk-crest" in text or "assets/fonts" in text:
    sys.exit("vendor_assets: GDS Transport font or crest references left behind")

def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()

upstream_of = {
    "govuk/govuk-frontend.min.css": gf / "dist/govuk/govuk-frontend.min.css",
    "govuk/govuk-frontend.min.js": gf / "dist/govuk/govuk-frontend.min.js",
    "htmx/htmx.min.js": hx / "dist/htmx.min.js",
    "htmx/LICENSE": hx / "LICENSE",
}

pack = {entry["name"]: entry for entry in json.loads(pack_json.read_text())}
packages = {}
for name, prefix, root in (("govuk-frontend", "govuk/", gf), ("htmx.org", "htmx/", hx)):
    meta = json.loads((root / "package.json").read_text())
    files = {}
    for rel in sorted(r for r in upstream_of if r.startswith(prefix)):
        up = upstream_of[rel]
        files[rel] = {
            "upstream_path": "package/" + up.relative_to(root).as_posix(),
            "sha256": sha256(static / rel),
            "upstream_sha256": sha256(up),
            "modified": sha256(static / rel) != sha256(up),
        }
    packages[name] = {
        "version": meta["version"],
        "license": meta.get("license"),
        "tarball": pack[name]["filename"],
        "integrity": pack[name]["integrity"],
        "files": files,
    }

(static / "versions.json").write_text(json.dumps({"packages": packages}, indent=2) + "\n", encoding="utf-8")

lines = [
    "# Vendored browser assets",
    "",
    "Generated by `scripts/vendor_assets.sh`; do not edit by hand (rerun the script).",
    "Served by the app from `web/static` at `/static`. No CDN is used.",
    "Machine-readable copy: `versions.json`.",
    "",
    "| Package | Version | Licence | npm integrity |",
    "| --- | --- | --- | --- |",
]
for name, pkg in packages.items():
    lines.append(f"| `{name}` | {pkg['version']} | {pkg['license']} | `{pkg['integrity']}` |")
lines += [
    "",
    "Pairs with PyPI `govuk-frontend-jinja` 4.1.0 (Jinja ports of the GOV.UK Frontend macros,",
    "tested against govuk-frontend 6.3.0). Bump both together.",
    "",
    "Local changes to upstream files:",
    "",
    "- `govuk/govuk-frontend.min.css`: the GDS Transport `@font-face` rules removed (text falls",
    "  back to the next font in the stack, Arial); the crest `url(...)` of the GOV.UK footer",
    "  copyright logo (never rendered here) replaced with `none`; `sourceMappingURL` comment",
    "  removed (maps are not shipped).",
    "- `govuk/govuk-frontend.min.js`: `sourceMappingURL` comment removed.",
    "",
    "Not vendored: the package's `assets/` folder. The GDS Transport font files are",
    "\"customised for exclusive use on gov.uk\", and the crown/crest images and the icons of its",
    "`manifest.json` are for GOV.UK services; this service is not on GOV.UK. The favicon is our",
    "own (`web/static/favicon.svg`, an app file).",
    "",
    "Licences: govuk-frontend code is MIT (Crown copyright). htmx is Zero-Clause BSD (`htmx/LICENSE`).",
    "",
    "| File | sha256 (as vendored) | sha256 (upstream) |",
    "| --- | --- | --- |",
]
for pkg in packages.values():
    for rel, f in pkg["files"].items():
        up = "same" if not f["modified"] else f"`{f['upstream_sha256']}`"
        lines.append(f"| `{rel}` | `{f['sha256']}` | {up} |")
(static / "VENDORED.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
print(f"vendor_assets: wrote {len(upstream_of)} files, versions.json and VENDORED.md")
PY

du -sh "$STATIC" | sed 's/^/vendor_assets: web\/static total /'
