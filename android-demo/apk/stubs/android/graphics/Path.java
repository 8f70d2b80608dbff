// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.graphics;

public class Path {
 public Path() { throw new RuntimeException("stub"); }
 public void reset() { throw new RuntimeException("stub"); }
 public void moveTo(float x, float y) { throw new RuntimeException("stub"); }
 public void lineTo(float x, float y) { throw new RuntimeException("stub"); }
}
