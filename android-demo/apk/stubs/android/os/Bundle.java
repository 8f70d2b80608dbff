// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.os;

public final class Bundle {
 public Object get(String key) { throw new RuntimeException("stub"); }
}
