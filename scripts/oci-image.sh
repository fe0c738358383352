#!/usr/bin/env bash
# Builds TokenHub's OCI image without a daemon or a registry: one layer holding the binary, the
# shared libraries it links (from this Debian host's packages), Debian's CA bundle, an
# unprivileged user and /data, packed as an OCI image layout archive (`podman load`,
# `docker load`, `skopeo copy oci-archive:…` take it). With --smoke it then unpacks the image's
# root file system and runs it — `chroot`, no container runtime needed — against a scratch
# database and a private nats-server: `serve` must become ready and `gateway` must answer.
#
#   scripts/oci-image.sh [--smoke]                 (release binary: cargo build --release first)
#   TOKENHUB_BIN=target/debug/tokenhub scripts/oci-image.sh --smoke      (what CI runs)
#
# Output: target/oci/tokenhub-oci.tar (and its digest on stdout).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${TOKENHUB_BIN:-target/release/tokenhub}
OUT=target/oci
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release, or set TOKENHUB_BIN)" >&2; exit 1; }
[ -f /etc/ssl/certs/ca-certificates.crt ] \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates >/dev/null; }
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

ROOT=$(mktemp -d)
SMOKE_DIR=""
cleanup() {
  rm -rf "$ROOT"
  [ -n "$SMOKE_DIR" ] && rm -rf "$SMOKE_DIR"
  return 0
}
trap cleanup EXIT

# The root file system: the binary, what it links, the CA bundle, a user, /data.
mkdir -p "$ROOT"/{usr/local/bin,etc/ssl/certs,data,tmp}
install -m 0755 "$BIN" "$ROOT/usr/local/bin/tokenhub"
for lib in $(ldd "$BIN" | grep -oE '/[^ ]+\.so[^ ]*'); do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ntokenhub:x:65534:65534:tokenhub:/data:/usr/sbin/nologin\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\ntokenhub:x:65534:\n' >"$ROOT/etc/group"
printf 'hosts: files dns\n' >"$ROOT/etc/nsswitch.conf"
chmod 1777 "$ROOT/tmp"

mkdir -p "$OUT"
python3 - "$ROOT" "$OUT/tokenhub-oci.tar" "$VERSION" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile

root, out, version = sys.argv[1:4]

def add_blob(tar, data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size, info.mtime = len(data), 0
    tar.addfile(info, io.BytesIO(data))
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

# The layer: the root file system, owned by root except /data, with fixed times (the same
# inputs give the same digest).
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as layer:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [""] + sorted(filenames) + dirnames:
            path = os.path.join(dirpath, name) if name else dirpath
            if name in dirnames:
                continue  # listed when walked
            rel = os.path.relpath(path, root)
            if rel == ".":
                continue
            info = layer.gettarinfo(path, arcname=rel)
            info.mtime, info.uname, info.gname = 0, "", ""
            info.uid = info.gid = 65534 if rel == "data" else 0
            if info.isfile():
                with open(path, "rb") as f:
                    layer.addfile(info, f)
            else:
                layer.addfile(info)
uncompressed = raw.getvalue()
compressed = gzip.compress(uncompressed, mtime=0)
config = {
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "User": "65534:65534",
        "WorkingDir": "/data",
        "Entrypoint": ["/usr/local/bin/tokenhub"],
        "Cmd": ["serve"],
        "Env": [
            "LISTEN_ADDR=0.0.0.0:8080",
            "GATEWAY_LISTEN_ADDR=0.0.0.0:8081",
            "TOKENHUB_KEK_FILE=/data/kek",
            "MASTER_KEY_FILE=/data/master-key",
            "LOG_FORMAT=json",
        ],
        "ExposedPorts": {"8080/tcp": {}, "8081/tcp": {}},
        "Labels": {"org.opencontainers.image.title": "tokenhub", "org.opencontainers.image.version": version},
    },
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(uncompressed).hexdigest()]},
    "history": [{"created_by": "scripts/oci-image.sh"}],
}
with tarfile.open(out, mode="w") as tar:
    layer_desc = add_blob(tar, compressed, "application/vnd.oci.image.layer.v1.tar+gzip")
    config_desc = add_blob(tar, json.dumps(config, sort_keys=True).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer_desc]}
    manifest_desc = add_blob(tar, json.dumps(manifest, sort_keys=True).encode(), "application/vnd.oci.image.manifest.v1+json")
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": f"tokenhub:{version}",
                                    "io.containerd.image.name": f"docker.io/library/tokenhub:{version}"}
    for name, data in [("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
                       ("index.json", json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]}).encode())]:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
print(f"{out}: {manifest_desc['digest']} ({len(compressed) / 1e6:.1f} MB compressed)")
PY

[ "${1:-}" = "--smoke" ] || exit 0

# Smoke test: unpack the image as a runtime would (index → manifest → layer), then run it.
SMOKE_DIR=$(mktemp -d)
python3 - "$OUT/tokenhub-oci.tar" "$SMOKE_DIR/rootfs" "$SMOKE_DIR/config.json" <<'PY'
import io, json, sys, tarfile
archive, rootfs, config_out = sys.argv[1:4]
with tarfile.open(archive) as oci:
    blob = lambda d: oci.extractfile("blobs/sha256/" + d["digest"].split(":")[1]).read()
    index = json.load(oci.extractfile("index.json"))
    manifest = json.loads(blob(index["manifests"][0]))
    config = json.loads(blob(manifest["config"]))
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=io.BytesIO(blob(layer)), mode="r:gz") as t:
            t.extractall(rootfs, filter="tar")
open(config_out, "w").write(json.dumps(config))
PY
mkdir -p "$SMOKE_DIR/rootfs/proc"
ENTRY=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["config"]; print(" ".join(c["Entrypoint"]))' "$SMOKE_DIR/config.json")
mapfile -t IMAGE_ENV < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["config"]["Env"]))' "$SMOKE_DIR/config.json")

PG=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
DB=tokenhub_oci_$$
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NATS_PORT=$(free_port); PORT=$(free_port); GW_PORT=$(free_port)
NATS_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)
CHROOT=$(command -v chroot)
"$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$SMOKE_DIR/nats" >/dev/null 2>&1 &
NATS_PID=$!
PIDS=("$NATS_PID")
stop_all() {
  # A server started from a function in the background runs as a child of that job's
  # subshell (env, then chroot, exec it): stop the children too.
  for pid in "${PIDS[@]}"; do pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  cleanup
}
trap stop_all EXIT

# The image's env, with the scratch services (the image's paths are absolute: its working
# directory does not matter here).
run_in_image() {
  env -i "${IMAGE_ENV[@]}" DATABASE_URL="$PG/$DB" NATS_URL="nats://127.0.0.1:$NATS_PORT" \
    MASTER_API_KEY=oci-smoke-master-key-0123456789abcdefghij "$@"
}
# Starts the image's entrypoint with `what` (serve, gateway) and `env`, then waits for `url`.
start_in_image() {
  local what=$1 env=$2 url=$3
  run_in_image "$env" "$CHROOT" --userspec=65534:65534 "$SMOKE_DIR/rootfs" $ENTRY "$what" \
    >"$SMOKE_DIR/$what.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    curl -fs "$url" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "the image's $what did not answer $url:" >&2; cat "$SMOKE_DIR/$what.log" >&2; exit 1
}
start_in_image serve "LISTEN_ADDR=127.0.0.1:$PORT" "http://127.0.0.1:$PORT/readyz"
start_in_image gateway "GATEWAY_LISTEN_ADDR=127.0.0.1:$GW_PORT" "http://127.0.0.1:$GW_PORT/healthz"
tenant=$(curl -fsS -X POST "http://127.0.0.1:$PORT/admin/tenants" -H 'X-Master-Key: oci-smoke-master-key-0123456789abcdefghij' \
  -H 'Content-Type: application/json' -d '{"name": "Image smoke"}')
echo "$tenant" | python3 -c 'import json,sys; assert json.load(sys.stdin)["tenant_id"].startswith("ten_")'
# The health check the compose file uses, from inside the image (no shell, no curl there).
run_in_image "$CHROOT" --userspec=65534:65534 "$SMOKE_DIR/rootfs" $ENTRY probe "http://127.0.0.1:$PORT/readyz" \
  || { echo "tokenhub probe failed inside the image" >&2; exit 1; }
echo "smoke: the image's serve is ready (its own probe agrees) and created a tenant; its gateway answers"
