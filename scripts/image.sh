#!/usr/bin/env bash
# image.sh builds the credsign container image without a Docker daemon
# (buildah, vfs storage driver, no registry) and checks it:
#
#   scripts/image.sh [OUT.tar]
#
# The image has the layout the Dockerfile makes: static binaries credsign
# (the entrypoint), credsign-agent and credsign-emulator in /usr/local/bin,
# the system CA bundle, /etc/passwd with nonroot (65532), home /home/nonroot,
# no shell and nothing writable needed (read-only root file system friendly).
# With OUT.tar it also writes the image as an OCI archive (load it with
# `podman load` or `skopeo copy oci-archive:OUT.tar docker://...`).
#
# The checks: the config's user, entrypoint, exposed port and OCI labels;
# every binary static; `credsign --version` run from the image (buildah run
# --isolation chroot). It prints the image size. Needs buildah (Debian
# package buildah) and the CA bundle of Debian's ca-certificates. Storage is
# private to the run and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
out="${1:-}"
fail() { echo "image.sh: FAIL: $*" >&2; exit 1; }
command -v buildah >/dev/null || fail "buildah is not installed (apt-get install buildah)"
command -v jq >/dev/null || fail "jq is not installed"
cabundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$cabundle" ] || fail "$cabundle is missing (apt-get install ca-certificates)"

work="$(mktemp -d)"
b=(buildah --storage-driver vfs --root "$work/storage" --runroot "$work/run")
ctr=""
cleanup() {
	[ -n "$ctr" ] && "${b[@]}" rm "$ctr" >/dev/null 2>&1 || true
	"${b[@]}" rmi --all --force >/dev/null 2>&1 || true
	chmod -R u+w "$work" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# The root file system, as the Dockerfile's final stage lays it out.
root="$work/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/home/nonroot" "$root/tmp"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$root/usr/local/bin/" \
	./cmd/credsign ./cmd/credsign-agent ./cmd/credsign-emulator
cp "$cabundle" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
chmod 0755 "$root/usr/local/bin/"*
chmod 1777 "$root/tmp"

version="$(git describe --tags --always --dirty 2>/dev/null || echo dev)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

ctr="$("${b[@]}" from scratch)"
"${b[@]}" copy "$ctr" "$root/" / >/dev/null
# The home directory belongs to nonroot (copy would make it root's).
m="$("${b[@]}" mount "$ctr")"
chown 65532:65532 "$m/home/nonroot"
chmod 0700 "$m/home/nonroot"
"${b[@]}" umount "$ctr" >/dev/null
"${b[@]}" config \
	--user 65532:65532 \
	--workingdir /home/nonroot \
	--port 8443/tcp \
	--entrypoint '["/usr/local/bin/credsign"]' \
	--cmd 'serve --addr :8443 --tls-cert /etc/credsign/tls.crt --tls-key /etc/credsign/tls.key' \
	--label org.opencontainers.image.title=credsign \
	--label "org.opencontainers.image.description=Short-lived MQTT credentials for IoT devices, from secrets kept in Vault" \
	--label org.opencontainers.image.source=https://github.com/credsign/credsign \
	--label "org.opencontainers.image.version=$version" \
	--label "org.opencontainers.image.revision=$revision" \
	--label "org.opencontainers.image.created=$created" \
	"$ctr"
"${b[@]}" commit --quiet --format oci --rm "$ctr" credsign:check >/dev/null
ctr=""

# The image config.
cfg="$("${b[@]}" inspect --type image credsign:check | jq '.OCIv1.config')"
check() { # JQ-FILTER WANT WHAT
	local got
	got="$(jq -c "$1" <<<"$cfg")"
	[ "$got" = "$2" ] || fail "$3: got $got, want $2"
	echo "image.sh: ok: $3 = $got"
}
check '.User' '"65532:65532"' "user"
check '.Entrypoint' '["/usr/local/bin/credsign"]' "entrypoint"
check '.ExposedPorts | keys' '["8443/tcp"]' "exposed ports"
for l in title source version revision created; do
	check ".Labels[\"org.opencontainers.image.$l\"] | type" '"string"' "label org.opencontainers.image.$l"
done

# Static binaries, checked in the image's own files.
ctr="$("${b[@]}" from credsign:check)"
mnt="$("${b[@]}" mount "$ctr")"
for bin in credsign credsign-agent credsign-emulator; do
	f="$mnt/usr/local/bin/$bin"
	[ -x "$f" ] || fail "/usr/local/bin/$bin is missing from the image"
	info="$(go version -m "$f")"
	grep -q 'CGO_ENABLED=0' <<<"$info" || fail "$bin was not built with CGO_ENABLED=0"
	# A dynamically linked ELF names its interpreter (/lib64/ld-linux...).
	if grep -qa 'ld-linux' "$f"; then fail "$bin is dynamically linked"; fi
done
[ "$(stat -c %u "$mnt/home/nonroot")" = 65532 ] || fail "/home/nonroot is not owned by 65532"
"${b[@]}" umount "$ctr" >/dev/null
echo "image.sh: ok: credsign, credsign-agent and credsign-emulator are static"

# Run the binary from the image, as the image's user.
if grep -q -- '"version"' cmd/credsign/main.go; then
	v="$("${b[@]}" run --isolation chroot "$ctr" -- /usr/local/bin/credsign --version)" ||
		fail "credsign --version failed in the image"
	echo "image.sh: ok: credsign --version in the image: $v"
else
	# credsign has no --version yet: run its help, which exits 0.
	"${b[@]}" run --isolation chroot "$ctr" -- /usr/local/bin/credsign help >/dev/null ||
		fail "credsign help failed in the image"
	echo "image.sh: ok: credsign help ran in the image (credsign has no --version yet)"
fi
agenthelp="$("${b[@]}" run --isolation chroot "$ctr" -- /usr/local/bin/credsign-agent --help 2>&1)" ||
	fail "credsign-agent --help failed in the image"
grep -q '^usage: credsign-agent' <<<"$agenthelp" || fail "credsign-agent --help in the image printed no usage: $agenthelp"
echo "image.sh: ok: credsign-agent --help ran in the image"

size="$("${b[@]}" images --format '{{.Size}}' credsign:check)"
echo "image.sh: image credsign:check: $size ($(du -sh "$root/usr/local/bin" | cut -f1) of binaries)"
if [ -n "$out" ]; then
	rm -f "$out"
	"${b[@]}" push --quiet credsign:check "oci-archive:$out:credsign:$version" >/dev/null
	echo "image.sh: wrote $out ($(du -h "$out" | cut -f1))"
fi
echo "image.sh: ok"
