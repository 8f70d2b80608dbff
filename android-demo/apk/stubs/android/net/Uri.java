// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.net;

public abstract class Uri {
 public abstract String getLastPathSegment();
}
