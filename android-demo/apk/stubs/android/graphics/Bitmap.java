// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.graphics;

public final class Bitmap {
 public enum Config { ALPHA_8, RGB_565, ARGB_4444, ARGB_8888 }
 public static Bitmap createBitmap(int width, int height, Config config) { throw new RuntimeException("stub"); }
 public static Bitmap createScaledBitmap(Bitmap src, int dstWidth, int dstHeight, boolean filter) { throw new RuntimeException("stub"); }
 public Bitmap copy(Config config, boolean isMutable) { throw new RuntimeException("stub"); }
 public final int getWidth() { throw new RuntimeException("stub"); }
 public final int getHeight() { throw new RuntimeException("stub"); }
 public void getPixels(int[] pixels, int offset, int stride, int x, int y, int width, int height) { throw new RuntimeException("stub"); }
}
