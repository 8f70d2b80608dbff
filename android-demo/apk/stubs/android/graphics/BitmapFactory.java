// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.graphics;

public class BitmapFactory {
 public static Bitmap decodeStream(java.io.InputStream is) { throw new RuntimeException("stub"); }
}
