// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.widget;

public class LinearLayout extends android.view.ViewGroup {
 public static final int HORIZONTAL = 0;
 public static final int VERTICAL = 1;
 public LinearLayout(android.content.Context context) { super(context); }
 public void setOrientation(int orientation) { throw new RuntimeException("stub"); }
 public static class LayoutParams extends android.view.ViewGroup.MarginLayoutParams { public LayoutParams(int width, int height) { super(width, height); } }
}
