// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.util;

public final class Log {
 public static int w(String tag, String msg) { throw new RuntimeException("stub"); }
}
