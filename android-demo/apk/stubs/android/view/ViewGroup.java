// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.view;

public abstract class ViewGroup extends View {
 public ViewGroup(android.content.Context context) { super(context); }
 public static class LayoutParams { public LayoutParams(int width, int height) { throw new RuntimeException("stub"); } }
 public static class MarginLayoutParams extends LayoutParams { public MarginLayoutParams(int width, int height) { super(width, height); } }
 public void addView(View child) { throw new RuntimeException("stub"); }
 public void addView(View child, LayoutParams params) { throw new RuntimeException("stub"); }
}
