// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.graphics;

public class Canvas {
 public Canvas(Bitmap bitmap) { throw new RuntimeException("stub"); }
 public void drawColor(int color) { throw new RuntimeException("stub"); }
 public void drawBitmap(Bitmap bitmap, float left, float top, Paint paint) { throw new RuntimeException("stub"); }
 public void drawPath(Path path, Paint paint) { throw new RuntimeException("stub"); }
}
